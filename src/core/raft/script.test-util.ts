// Scripted Raft scenarios with expected transcripts, in the spirit of etcd-io/raft's
// data-driven "interaction" tests: a scenario is a short text of commands, the interpreter
// runs it against a TestCluster and writes down everything that happened (each message
// delivered or dropped, each change of a node's role, term, leader or commit index), and a
// test compares that transcript with the one a person reviewed. A behaviour change then
// shows up as a readable diff of the protocol's conversation, not as a failed boolean.
//
// A script is line-oriented:
//
//   # a comment                    copied to the transcript as it is
//   > command args                 run; copied, then followed by its output
//     output (two-space indent)    what a command printed last time: skipped on input
//   (blank)                        copied
//
// so a reviewed transcript is itself a valid script, and a test checks
// `runScript(golden) === golden`.
//
// Commands (node ids are 1..N; `A->B` matches messages from A to B, either side may be `*`):
//
//   cluster N [prevote=B] [checkquorum=B] [election=T] [heartbeat=T] [maxentries=N]
//             [inflight=N] [mutant=NAME]
//                                  N engines (seed = id); must come first
//   campaign ID                    tick ID until its election timer runs out and it campaigns
//   elect ID                       set-up shorthand: campaign ID, stabilize, one heartbeat
//                                  round, stabilize — printing only each node's final state
//   tick ID... [xN]                tick each listed node (or `all`) N times, no delivery
//   propose ID "data"... [xN]      propose each datum N times at ID (a follower forwards it)
//   read ID REQUEST                ask ID for a linearizable read (ReadIndex)
//   forget ID                      ID forgets its leader and that leader's lease
//   deliver [A->B]                 deliver the queued messages (those matching) one round
//   stabilize                      deliver rounds until no message is queued
//   queue                          print the queued messages without delivering them
//   drop A->B | drop all           drop queued messages now
//   partition 1 2 | 3 [| 4 5]      cut every link between the groups, both ways, until heal
//   heal                           restore every link
//   crash ID / restart ID          stop a node (its queued messages are lost), restart it
//                                  from its disk (TestCluster.start; the harness's disk
//                                  keeps everything written, so a crash loses nothing
//                                  persisted)
//   status                         role, term, leader, commit and last index of each node
//   log ID...                      each node's log as index:term pairs (a run of five or
//                                  more entries of one term as a range: 2..21:1)
//
// Output lines:
//
//   1->2 <describeRaftMessage> [afterPersist]   a delivered message; `afterPersist` when the
//                                               engine released it only after its Ready's
//                                               writes were durable (votes, acks)
//   1->2 <...> (dropped: REASON) [xN]           not delivered (partition, crash, drop)
//   node 2: follower term=1 leader=1 commit=1   a node's state changed (printed at once)
//   [tick 7] node 1: ...                        ... during the 7th tick of a `tick xN`
//   node 2: read-state request=9 index=3        a ReadIndex request completed on node 2
//
// Pure like the rest of core/: it returns text and never prints.
import type { NodeId } from "../engine/contract.js";
import { DEFAULT_RAFT_CONFIG, type RaftConfig } from "./config.js";
import { data, TestCluster, type Envelope } from "./harness.test-util.js";
import { describeRaftMessage } from "./messages.js";
import { isRaftMutant, type RaftMutant } from "./mutants.js";
import type { RaftEngine } from "./raft.js";

/** Runs `script` and returns its transcript (the script with every command's output filled in). */
export function runScript(script: string): string {
  const run = new ScriptRun();
  const transcript: string[] = [];
  script.split("\n").forEach((line, i) => {
    if (line.startsWith("  ")) return; // output recorded by an earlier run: regenerated below
    if (line === "" || line.startsWith("#")) {
      transcript.push(line);
      return;
    }
    if (!line.startsWith("> ")) throw new Error(`script line ${i + 1}: expected "> command", "# comment" or indented output, got ${JSON.stringify(line)}`);
    const command = line.slice(2).trim();
    transcript.push(`> ${command}`);
    try {
      for (const output of run.execute(command)) transcript.push(`  ${output}`);
    } catch (error) {
      throw new Error(`script line ${i + 1} (${command}): ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    }
  });
  return transcript.join("\n");
}

interface Token {
  readonly text: string;
  /** Written in double quotes: data, never a keyword or a number. */
  readonly quoted: boolean;
}

function tokenize(command: string): Token[] {
  return Array.from(command.matchAll(/"([^"]*)"|(\S+)/g), (m) => (m[1] !== undefined ? { text: m[1], quoted: true } : { text: m[2] ?? "", quoted: false }));
}

/** Splits a trailing `xN` repeat count off the arguments. */
function splitRepeat(args: readonly Token[]): { args: readonly Token[]; times: number } {
  const last = args[args.length - 1];
  const match = last !== undefined && !last.quoted ? /^x(\d+)$/.exec(last.text) : null;
  if (match === null) return { args, times: 1 };
  return { args: args.slice(0, -1), times: positiveInt(match[1] ?? "", "repeat count") };
}

function positiveInt(text: string, what: string): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value) || value <= 0) throw new Error(`${what} must be a positive integer, got ${JSON.stringify(text)}`);
  return value;
}

function boolean(text: string, what: string): boolean {
  if (text === "true") return true;
  if (text === "false") return false;
  throw new Error(`${what} must be true or false, got ${JSON.stringify(text)}`);
}

/** The state a transcript reports a change of (the last index is left to `status` and `log`). */
function stateLine(cluster: TestCluster, id: NodeId): string {
  const s = cluster.engine(id).status();
  return `node ${id}: ${s.role} term=${s.term} leader=${s.leader ?? "none"} commit=${s.commitIndex}`;
}

function messageLine(e: Envelope): string {
  return `${e.from}->${e.to} ${describeRaftMessage(e.message)}${e.afterPersist ? " afterPersist" : ""}`;
}

/** One script's world: the cluster, which nodes are down, and which links are cut. */
class ScriptRun {
  private cluster: TestCluster | null = null;
  private electionTicks = DEFAULT_RAFT_CONFIG.electionTicks;
  private heartbeatTicks = DEFAULT_RAFT_CONFIG.heartbeatTicks;
  private readonly down = new Set<NodeId>();
  /** Cut links as "from>to". The script, not the harness, owns delivery, so it owns the cuts. */
  private readonly cut = new Set<string>();
  /** The state line last printed per node, to print only changes. */
  private readonly shown = new Map<NodeId, string>();
  /** How many of each node's read states were printed. */
  private readonly readStatesShown = new Map<NodeId, number>();
  /** The current command's output. */
  private out: string[] = [];
  /** While set, nothing is printed and no change is recorded as shown (see `elect`). */
  private quiet = false;

  execute(command: string): string[] {
    this.out = [];
    const [name, ...args] = tokenize(command);
    switch (name?.text) {
      case "cluster":
        this.create(args);
        break;
      case "campaign":
        this.campaign(this.node(args, 0));
        break;
      case "elect":
        this.elect(this.node(args, 0));
        break;
      case "tick":
        this.tick(args);
        break;
      case "propose":
        this.propose(args);
        break;
      case "read":
        this.read(this.node(args, 0), positiveInt(this.arg(args, 1, "a request id"), "request id"));
        break;
      case "forget":
        this.live(this.node(args, 0)).forgetLeader();
        this.noteChanges();
        break;
      case "deliver":
        this.deliver(args[0] === undefined ? () => true : matcher(this.arg(args, 0, "")));
        break;
      case "stabilize":
        this.stabilize();
        break;
      case "queue":
        for (const e of this.world().queue) this.emit(messageLine(e));
        break;
      case "drop":
        this.drop(this.arg(args, 0, "all or A->B"));
        break;
      case "partition":
        this.partition(args);
        break;
      case "heal":
        this.cut.clear();
        break;
      case "crash":
        this.crash(this.node(args, 0));
        break;
      case "restart":
        this.restart(this.node(args, 0));
        break;
      case "status":
        this.status();
        break;
      case "log":
        this.logs(args);
        break;
      default:
        throw new Error(`unknown command ${JSON.stringify(name?.text ?? "")}`);
    }
    return this.out;
  }

  // ---- arguments ----

  private world(): TestCluster {
    if (this.cluster === null) throw new Error("no cluster yet: start the script with `cluster N`");
    return this.cluster;
  }

  private arg(args: readonly Token[], i: number, what: string): string {
    const token = args[i];
    if (token === undefined) throw new Error(`missing argument ${i + 1}: ${what}`);
    return token.text;
  }

  private node(args: readonly Token[], i: number): NodeId {
    return this.nodeId(this.arg(args, i, "a node id"));
  }

  private nodeId(text: string): NodeId {
    const id = positiveInt(text, "node id");
    if (!this.world().ids.includes(id)) throw new Error(`no node ${id} in a cluster of ${this.world().ids.length}`);
    return id;
  }

  /** The engine of a node that is up. */
  private live(id: NodeId): RaftEngine {
    if (this.down.has(id)) throw new Error(`node ${id} is down`);
    return this.world().engine(id);
  }

  // ---- commands ----

  private create(args: readonly Token[]): void {
    if (this.cluster !== null) throw new Error("the cluster already exists");
    const size = positiveInt(this.arg(args, 0, "the cluster size"), "cluster size");
    let config: RaftConfig = { ...DEFAULT_RAFT_CONFIG };
    let mutant: RaftMutant | null = null;
    for (const token of args.slice(1)) {
      const [key, value = ""] = token.text.split("=", 2);
      switch (key) {
        case "prevote":
          config = { ...config, preVote: boolean(value, key) };
          break;
        case "checkquorum":
          config = { ...config, checkQuorum: boolean(value, key) };
          break;
        case "election":
          config = { ...config, electionTicks: positiveInt(value, key) };
          break;
        case "heartbeat":
          config = { ...config, heartbeatTicks: positiveInt(value, key) };
          break;
        case "maxentries":
          config = { ...config, entriesPerMessageMax: positiveInt(value, key) };
          break;
        case "inflight":
          config = { ...config, inflightMessagesMax: positiveInt(value, key) };
          break;
        case "mutant":
          if (!isRaftMutant(value)) throw new Error(`unknown mutant ${JSON.stringify(value)}`);
          mutant = value;
          break;
        default:
          throw new Error(`unknown cluster option ${JSON.stringify(token.text)}`);
      }
    }
    this.cluster = new TestCluster(size, config, mutant);
    this.electionTicks = config.electionTicks;
    this.heartbeatTicks = config.heartbeatTicks;
    for (const id of this.cluster.ids) this.shown.set(id, stateLine(this.cluster, id));
  }

  /** Ticks `id` until its election timer fires: it sends (pre-)vote requests or changes role. */
  private campaign(id: NodeId): void {
    const c = this.world();
    const engine = this.live(id);
    const before = engine.status();
    if (before.role === "leader") throw new Error(`node ${id} leads already`);
    const sentBefore = c.sent.length;
    const printedBefore = this.out.length;
    // The randomized timeout is below twice the election timeout.
    for (let i = 0; i < 2 * this.electionTicks; i++) {
      engine.tick();
      this.flush();
      const after = engine.status();
      const requested = c.sent.slice(sentBefore).some((e) => e.from === id && e.message.type === "vote");
      if (requested || after.role !== before.role || after.term !== before.term) {
        this.noteChanges();
        if (this.out.length === printedBefore) this.emit(`${stateLine(c, id)} (campaigns again)`);
        return;
      }
    }
    throw new Error(`node ${id} did not campaign within ${2 * this.electionTicks} ticks`);
  }

  /** Runs a whole election and one heartbeat round without printing them; then prints what changed. */
  private elect(id: NodeId): void {
    this.quiet = true;
    try {
      this.campaign(id);
      this.stabilize();
      if (this.world().engine(id).status().role !== "leader") throw new Error(`node ${id} did not win the election`);
      for (let i = 0; i < this.heartbeatTicks; i++) this.live(id).tick();
      this.flush();
      this.stabilize();
    } finally {
      this.quiet = false;
    }
    this.noteChanges();
  }

  private tick(tokens: readonly Token[]): void {
    const { args, times } = splitRepeat(tokens);
    if (args.length === 0) throw new Error("tick which nodes? (ids or all)");
    const ids = args.length === 1 && args[0]?.text === "all" ? this.world().ids.filter((id) => !this.down.has(id)) : args.map((t) => this.nodeId(t.text));
    for (let k = 1; k <= times; k++) {
      for (const id of ids) this.live(id).tick();
      this.noteChanges(times > 1 ? `[tick ${k}] ` : "");
      this.flush();
    }
  }

  private propose(tokens: readonly Token[]): void {
    const { args, times } = splitRepeat(tokens);
    const id = this.node(args, 0);
    const values = args.slice(1);
    if (values.length === 0 || values.some((t) => !t.quoted)) throw new Error('propose ID "data"... [xN]: the data goes in double quotes');
    for (let k = 0; k < times; k++) {
      for (const value of values) {
        const admission = this.live(id).propose(data(value.text));
        if (!admission.accepted) this.emit(`node ${id}: proposal refused: ${admission.error.message}`);
      }
    }
    this.noteChanges();
    this.flush();
  }

  private read(id: NodeId, requestId: number): void {
    const admission = this.live(id).readIndex(requestId);
    if (!admission.accepted) this.emit(`node ${id}: read refused: ${admission.error.message}`);
    this.noteChanges();
    this.flush();
  }

  /** Delivers the matching queued messages, one round: what they cause waits for the next. */
  private deliver(matches: (e: Envelope) => boolean): void {
    const c = this.world();
    const batch = c.queue.filter(matches);
    c.queue = c.queue.filter((e) => !matches(e));
    const dropped: string[] = [];
    for (const e of batch) {
      const reason = this.down.has(e.to) ? `${e.to} is down` : this.cut.has(`${e.from}>${e.to}`) ? "partitioned" : null;
      if (reason !== null) {
        dropped.push(`${messageLine(e)} (dropped: ${reason})`);
        continue;
      }
      this.emit(messageLine(e));
      c.engine(e.to).step(e.from, e.message);
      this.noteChanges();
    }
    this.printGrouped(dropped);
    this.flush();
  }

  private stabilize(): void {
    for (let round = 0; this.world().queue.length > 0; round++) {
      if (round >= 1000) throw new Error("stabilize: still not quiet after 1000 rounds");
      this.deliver(() => true);
    }
  }

  private drop(which: string): void {
    const c = this.world();
    const matches = which === "all" ? () => true : matcher(which);
    this.printGrouped(c.queue.filter(matches).map((e) => `${messageLine(e)} (dropped)`));
    c.queue = c.queue.filter((e) => !matches(e));
  }

  private partition(args: readonly Token[]): void {
    const groups = args
      .map((t) => t.text)
      .join(" ")
      .split("|")
      .map((group) => group.trim().split(/\s+/).filter((s) => s !== "").map((s) => this.nodeId(s)));
    if (groups.length < 2 || groups.some((g) => g.length === 0)) throw new Error("partition A... | B... [| C...]");
    for (const [i, a] of groups.entries()) {
      for (const b of groups.slice(i + 1)) {
        for (const x of a) {
          for (const y of b) {
            this.cut.add(`${x}>${y}`);
            this.cut.add(`${y}>${x}`);
          }
        }
      }
    }
  }

  private crash(id: NodeId): void {
    const c = this.world();
    this.live(id);
    this.flush(); // the harness's disk keeps every write, so the crash loses nothing persisted
    const involved = (e: Envelope): boolean => e.from === id || e.to === id;
    this.printGrouped(c.queue.filter(involved).map((e) => `${messageLine(e)} (dropped: ${id} crashed)`));
    c.queue = c.queue.filter((e) => !involved(e));
    this.down.add(id);
    this.shown.set(id, `node ${id}: down`);
    this.emit(`node ${id}: down`);
  }

  private restart(id: NodeId): void {
    if (!this.down.has(id)) throw new Error(`node ${id} is not down`);
    this.down.delete(id);
    this.world().start(id);
    this.readStatesShown.set(id, 0);
    this.noteChanges();
    this.flush();
  }

  private status(): void {
    const c = this.world();
    for (const id of c.ids) this.emit(this.down.has(id) ? `node ${id}: down` : `${stateLine(c, id)} last=${c.engine(id).status().lastIndex}`);
  }

  private logs(args: readonly Token[]): void {
    if (args.length === 0) throw new Error("log which nodes?");
    for (const token of args) {
      const id = this.nodeId(token.text);
      const engine = this.world().engine(id);
      const terms: number[] = [];
      for (let index = 1; index <= engine.status().lastIndex; index++) terms.push(engine.entryTerm(index) ?? 0);
      this.emit(`node ${id}: ${terms.length > 0 ? formatLog(terms) : "(empty)"}`);
    }
  }

  // ---- reporting ----

  private emit(line: string): void {
    if (!this.quiet) this.out.push(line);
  }

  /** Processes every node's Ready (persist, queue messages, apply) and reports finished reads. */
  private flush(): void {
    const c = this.world();
    c.flush();
    for (const id of c.ids) {
      const states = c.readStates.get(id) ?? [];
      for (const state of states.slice(this.readStatesShown.get(id) ?? 0)) this.emit(`node ${id}: read-state request=${state.requestId} index=${state.index}`);
      this.readStatesShown.set(id, states.length);
    }
  }

  /** Prints the state line of every live node whose role, term, leader or commit changed. */
  private noteChanges(prefix = ""): void {
    if (this.quiet) return;
    const c = this.world();
    for (const id of c.ids) {
      if (this.down.has(id)) continue;
      const line = stateLine(c, id);
      if (this.shown.get(id) === line) continue;
      this.shown.set(id, line);
      this.emit(prefix + line);
    }
  }

  /** Prints lines in first-seen order, identical ones once with a count (a partitioned leader's heartbeats). */
  private printGrouped(lines: readonly string[]): void {
    const counts = new Map<string, number>();
    for (const line of lines) counts.set(line, (counts.get(line) ?? 0) + 1);
    for (const [line, count] of counts) this.emit(count > 1 ? `${line} x${count}` : line);
  }
}

/**
 * A log as `index:term` pairs, `1:1 2:1 3:2`; a run of five or more entries of one term is
 * written as a range, `2..21:1`, so a long log stays one readable line.
 */
function formatLog(terms: readonly number[]): string {
  const parts: string[] = [];
  for (let start = 0; start < terms.length; ) {
    let end = start;
    while (end + 1 < terms.length && terms[end + 1] === terms[start]) end++;
    const term = terms[start] ?? 0;
    if (end - start + 1 >= 5) parts.push(`${start + 1}..${end + 1}:${term}`);
    else for (let i = start; i <= end; i++) parts.push(`${i + 1}:${term}`);
    start = end + 1;
  }
  return parts.join(" ");
}

/** `A->B` with ids or `*` on either side. */
function matcher(spec: string): (e: Envelope) => boolean {
  const match = /^(\d+|\*)->(\d+|\*)$/.exec(spec);
  if (match === null) throw new Error(`expected A->B (ids or *), got ${JSON.stringify(spec)}`);
  const side = (text: string | undefined): number | null => (text === undefined || text === "*" ? null : Number(text));
  const from = side(match[1]);
  const to = side(match[2]);
  return (e) => (from === null || e.from === from) && (to === null || e.to === to);
}
