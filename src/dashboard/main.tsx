/**
 * The live dashboard (docs/dashboard.md): one page, served by every node at /dashboard,
 * that shows the cluster as the node it was loaded from streams it, and acts on it through
 * the node's HTTP API with the user's token.
 */
import { render } from "preact";
import { useEffect, useMemo, useState } from "preact/hooks";
import { Chart } from "./chart.js";
import { ReplayView } from "./replay.js";
import { NodeStream, type ClusterEvent, type MemberFrame, type Sample, type StateFrame } from "./stream.js";

const SAMPLES_MAX = 600;
const EVENTS_MAX = 200;
const TOKEN_KEY = "synod-dashboard-token";
/** How long the isolate and drop buttons' faults last. */
const FAULT_MS = 10_000;

/** The token from the URL's fragment (a move from another node), else the one this tab kept. */
function initialToken(): string | null {
  const match = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (match?.[1] !== undefined) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

interface Answer {
  readonly ok: boolean;
  readonly status: number;
  readonly body: Record<string, unknown>;
}

async function call(method: string, path: string, token: string | null, body?: unknown): Promise<Answer> {
  const headers: Record<string, string> = token === null ? {} : { authorization: `Bearer ${token}` };
  if (body !== undefined) headers["content-type"] = "application/json";
  try {
    const answer = await fetch(path, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    const parsed = (await answer.json().catch(() => ({}))) as Record<string, unknown>;
    return { ok: answer.ok, status: answer.status, body: parsed };
  } catch (error) {
    return { ok: false, status: 0, body: { message: `the node did not answer: ${(error as Error).message}` } };
  }
}

function Login(props: { readonly message: string; readonly onToken: (token: string) => void }) {
  const [name, setName] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState(props.message);
  const submit = async (event: Event) => {
    event.preventDefault();
    const answer = await call("POST", "/v1/auth/authenticate", null, { name, password });
    if (answer.ok && typeof answer.body["token"] === "string") props.onToken(answer.body["token"]);
    else setError(String(answer.body["message"] ?? `HTTP ${answer.status}`));
  };
  return (
    <form class="login" onSubmit={submit}>
      <h2>Sign in to the cluster</h2>
      <p>Auth is enabled on this cluster: the dashboard needs a user (any user to watch; an admin to act).</p>
      <input name="user" placeholder="user" value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
      <input name="password" type="password" placeholder="password" value={password} onInput={(e) => setPassword((e.target as HTMLInputElement).value)} />
      <button type="submit">Sign in</button>
      {error === "" ? null : <p class="error">{error}</p>}
    </form>
  );
}

function termText(status: MemberFrame["status"]): string {
  if (status === null) return "–";
  return status.ballot === undefined ? `term ${status.term}` : `ballot ${status.ballot.round}.${status.ballot.node}`;
}

function NodeCard(props: { readonly member: MemberFrame; readonly frame: StateFrame; readonly act: Actions }) {
  const { member, frame, act } = props;
  const status = member.status;
  const role = !member.reachable ? "down" : (status?.role ?? "unknown");
  const lag = status === null ? 0 : status.commitIndex - status.appliedIndex;
  const local = frame.cluster.local;
  const isolated = member.id === frame.node && frame.faults !== null;
  return (
    <div class={`node role-${role}`} data-node={member.id} data-role={role}>
      <div class="node-head">
        <span class="node-id">node {member.id}</span>
        <span class="role">{role}</span>
        {member.id === frame.node ? <span class="here" title="the page streams from this node">streaming</span> : null}
      </div>
      {status === null ? (
        <p class="error">{member.error ?? "no answer"}</p>
      ) : (
        <dl>
          <dt>{status.consensus === "paxos" ? "ballot" : "term"}</dt>
          <dd>{termText(status)}</dd>
          <dt>leader</dt>
          <dd>{status.leader ?? "none"}</dd>
          <dt>commit</dt>
          <dd>{status.commitIndex}</dd>
          <dt>applied</dt>
          <dd>
            {status.appliedIndex}
            {lag > 0 ? <span class="lag"> ({lag} behind)</span> : null}
          </dd>
          <dt>log</dt>
          <dd>
            {status.snapshotIndex}…{status.lastIndex}
          </dd>
        </dl>
      )}
      <div class="buttons">
        {member.reachable && status?.role !== "leader" ? <button onClick={() => act.transfer(member.id)}>make leader</button> : null}
        {local ? (
          member.reachable ? (
            <button class="danger" data-action="kill" onClick={() => act.kill(member.id)}>
              kill
            </button>
          ) : (
            <button data-action="restart" onClick={() => act.restart(member.id)}>
              restart
            </button>
          )
        ) : null}
        {frame.cluster.faultInjection && member.reachable ? (
          <>
            <button class="danger" data-action="isolate" onClick={() => act.fault(member.id, { isolate: true, durationMs: FAULT_MS })}>
              isolate {FAULT_MS / 1000} s
            </button>
            <button class="danger" data-action="drop" onClick={() => act.fault(member.id, { dropRate: 0.3, durationMs: FAULT_MS })}>
              drop 30%
            </button>
            {isolated ? <button onClick={() => act.fault(member.id, { heal: true })}>heal</button> : null}
          </>
        ) : null}
        <button class="danger" onClick={() => act.remove(member.id)}>
          remove
        </button>
      </div>
    </div>
  );
}

function Replication(props: { readonly frame: StateFrame }) {
  const leader = props.frame.members.find((m) => m.status?.role === "leader" && m.reachable);
  const rows = leader?.status?.replication ?? [];
  if (leader === undefined) return <p class="muted">No leader: no replication to show.</p>;
  return (
    <table class="replication">
      <thead>
        <tr>
          <th>follower</th>
          <th>match</th>
          <th>behind</th>
          <th>next</th>
          <th>in flight</th>
          <th>state</th>
          <th>active</th>
        </tr>
      </thead>
      <tbody>
        {rows.map((row) => (
          <tr key={row.id}>
            <td>node {row.id}</td>
            <td>{row.match}</td>
            <td>{(leader.status?.lastIndex ?? 0) - row.match}</td>
            <td>{row.next}</td>
            <td>{row.inflight}</td>
            <td class={`state-${row.state}`}>{row.state === "probe" ? "probing" : row.state === "replicate" ? "replicating" : "snapshot"}</td>
            <td>{row.active ? "yes" : "no"}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** Why a member has no link rates to show. */
function noLinksText(member: MemberFrame): string {
  if (!member.reachable) return member.error ?? "no answer";
  if (member.status !== null && member.status.links === undefined) return "its status has no link counters (an older version)";
  return "rates after its next answer";
}

/** Every node's links: the streamed node's from its transport, the others' from their status counters. */
function Links(props: { readonly frame: StateFrame }) {
  return (
    <table class="links">
      <thead>
        <tr>
          <th>link</th>
          <th>up</th>
          <th>sent/s</th>
          <th>received/s</th>
          <th>dropped/s</th>
        </tr>
      </thead>
      {props.frame.members.map((member) => (
        <tbody key={member.id} data-links-of={member.id}>
          {member.links === null ? (
            <tr>
              <td>node {member.id}</td>
              <td colSpan={4} class="muted">
                {noLinksText(member)}
              </td>
            </tr>
          ) : (
            member.links.map((link) => (
              <tr key={link.peer} data-link={`${member.id}-${link.peer}`} data-sent={link.sentPerSecond} data-received={link.receivedPerSecond}>
                <td>
                  {member.id} ⇄ {link.peer}
                </td>
                <td>{link.connected ? "out" : "–"} {link.inboundConnected ? "in" : "–"}</td>
                <td>{link.sentPerSecond.toFixed(1)}</td>
                <td>{link.receivedPerSecond.toFixed(1)}</td>
                <td class={link.droppedPerSecond > 0 ? "warn" : ""}>{link.droppedPerSecond.toFixed(1)}</td>
              </tr>
            ))
          )}
        </tbody>
      ))}
    </table>
  );
}

interface Actions {
  transfer(to: number): void;
  remove(id: number): void;
  kill(id: number): void;
  restart(id: number): void;
  /** One more node for a local cluster: `synod cluster` starts it and it joins. */
  add(): void;
  fault(id: number, fault: Record<string, unknown>): void;
}

function App() {
  const [token, setToken] = useState<string | null>(initialToken);
  const [needLogin, setNeedLogin] = useState<string | null>(null);
  const [connection, setConnection] = useState({ text: "connecting…", ok: false });
  const [frame, setFrame] = useState<StateFrame | null>(null);
  const [samples, setSamples] = useState<readonly Sample[]>([]);
  const [events, setEvents] = useState<readonly ClusterEvent[]>([]);
  const [notice, setNotice] = useState<{ text: string; ok: boolean } | null>(null);

  useEffect(() => {
    let stream: NodeStream | null = null;
    let cancelled = false;
    void (async () => {
      const auth = await call("GET", "/v1/auth/status", null);
      if (cancelled) return;
      if (auth.body["enabled"] === true && token === null) return setNeedLogin("");
      stream = new NodeStream(() => token, {
        history: (h) => {
          setSamples(h.samples.slice(-SAMPLES_MAX));
          setEvents([...h.events].reverse());
        },
        state: (f) => {
          setFrame(f);
          const sample = f.sample;
          if (sample !== null) setSamples((old) => (old[old.length - 1]?.atMs === sample.atMs ? old : [...old.slice(-(SAMPLES_MAX - 1)), sample]));
        },
        event: (e) => setEvents((old) => [e, ...old].slice(0, EVENTS_MAX)),
        connection: (text, ok) => setConnection({ text, ok }),
        unauthorized: (message) => {
          sessionStorage.removeItem(TOKEN_KEY);
          setNeedLogin(message);
        },
      });
      stream.start();
    })();
    return () => {
      cancelled = true;
      stream?.stop();
    };
  }, [token]);

  const act = useMemo<Actions>(() => {
    const run = async (what: string, method: string, path: string, body?: unknown) => {
      setNotice({ text: `${what}…`, ok: true });
      const answer = await call(method, path, token, body);
      setNotice({ text: answer.ok ? `${what}: done` : `${what}: ${String(answer.body["message"] ?? `HTTP ${answer.status}`)}`, ok: answer.ok });
    };
    return {
      transfer: (to) => void run(`leadership to node ${to}`, "POST", "/v1/leader/transfer", { to }),
      remove: (id) => {
        if (confirm(`Remove node ${id} from the cluster's configuration?`)) void run(`remove node ${id}`, "DELETE", `/v1/members/${id}`);
      },
      kill: (id) => void run(`kill node ${id}`, "POST", "/v1/debug/cluster", { node: id, action: "kill" }),
      restart: (id) => void run(`restart node ${id}`, "POST", "/v1/debug/cluster", { node: id, action: "restart" }),
      add: () => void run("add a node", "POST", "/v1/debug/cluster", { action: "add" }),
      fault: (id, fault) => void run(`fault on node ${id}`, "POST", "/v1/debug/faults", { ...fault, node: id }),
    };
  }, [token]);

  if (needLogin !== null)
    return (
      <Login
        message={needLogin}
        onToken={(t) => {
          sessionStorage.setItem(TOKEN_KEY, t);
          setNeedLogin(null);
          setToken(t);
        }}
      />
    );

  const leaders = frame?.members.filter((m) => m.reachable && m.status?.role === "leader") ?? [];
  return (
    <main>
      <header>
        <h1>synod</h1>
        {frame === null ? null : (
          <span class="cluster">
            {frame.status.consensus} · cluster {frame.status.clusterId.slice(0, 12)} · {frame.members.length} members · leader{" "}
            <b id="leader">{leaders.length === 1 ? `node ${leaders[0]?.id}` : leaders.length === 0 ? "none" : leaders.map((l) => l.id).join(", ")}</b>
          </span>
        )}
        <span class={`connection ${connection.ok ? "ok" : "lost"}`}>{connection.text}</span>
      </header>
      {notice === null ? null : <div class={`notice ${notice.ok ? "" : "error"}`}>{notice.text}</div>}
      {frame === null ? (
        <p class="loading">Waiting for the node's first frame…</p>
      ) : (
        <>
          <section class="nodes">
            {frame.members.map((member) => (
              <NodeCard key={member.id} member={member} frame={frame} act={act} />
            ))}
            {frame.cluster.local ? (
              <div class="add-node">
                <button data-action="add" onClick={() => act.add()}>
                  add a node
                </button>
              </div>
            ) : null}
          </section>
          <section class="grid">
            <div>
              <h2>Replication (from the leader)</h2>
              <Replication frame={frame} />
              <h2>Links (messages per second, as each node counts them)</h2>
              <Links frame={frame} />
            </div>
            <div>
              <h2>Events</h2>
              <ol class="events">
                {events.map((e) => (
                  <li key={`${e.node}-${e.seq}`} class={`event-${e.kind}`}>
                    <time>{new Date(e.atMs).toLocaleTimeString()}</time> <span class="kind">{e.kind}</span> {e.message}
                  </li>
                ))}
              </ol>
            </div>
          </section>
          <section class="charts">
            <Chart title="Requests" unit="/s" samples={samples} series={[{ label: "requests", color: "#5fb3ff", pick: (s) => s.requestsPerSecond }, { label: "errors", color: "#ff6b6b", pick: (s) => s.requestErrorsPerSecond }]} />
            <Chart title="Request latency" unit="ms" samples={samples} series={[{ label: "avg", color: "#8be28b", pick: (s) => s.requestMsAvg }, { label: "max", color: "#e2c08b", pick: (s) => s.requestMsMax }]} />
            <Chart title="WAL fsync latency" unit="ms" samples={samples} series={[{ label: "avg", color: "#c58bff", pick: (s) => s.fsyncMsAvg }, { label: "max", color: "#ff8bd0", pick: (s) => s.fsyncMsMax }]} />
            <Chart title={`Messages, node ${frame.node}`} unit="/s" samples={samples} series={[{ label: "sent", color: "#5fb3ff", pick: (s) => s.messagesSentPerSecond }, { label: "received", color: "#8be28b", pick: (s) => s.messagesReceivedPerSecond }]} />
          </section>
        </>
      )}
    </main>
  );
}

type View = "live" | "replay";

function viewOfHash(): View {
  return location.hash.startsWith("#replay") ? "replay" : "live";
}

/**
 * Two views: the live cluster, and a simulated run's replay (`#replay`). Only the shown one is
 * mounted, so a page opened for a replay never connects to a node, and works with none running.
 */
function Page() {
  const [view, setView] = useState<View>(viewOfHash);
  useEffect(() => {
    const follow = () => setView(viewOfHash());
    addEventListener("hashchange", follow);
    return () => removeEventListener("hashchange", follow);
  }, []);
  return (
    <>
      <nav class="tabs">
        <a href="#live" class={view === "live" ? "active" : ""} id="tab-live">
          Live
        </a>
        <a href="#replay" class={view === "replay" ? "active" : ""} id="tab-replay">
          Replay
        </a>
      </nav>
      {view === "live" ? <App /> : <main><ReplayView /></main>}
    </>
  );
}

const root = document.getElementById("app");
if (root !== null) {
  root.textContent = "";
  render(<Page />, root);
}
