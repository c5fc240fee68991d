// Scripted Multi-Paxos scenarios with expected transcripts, as etcd-io/raft's data-driven
// "interaction" tests: a scenario is a short text of commands, the interpreter runs it
// against a PaxosCluster and writes down everything that happened (each message delivered
// or dropped, each change of a node's role, ballot, leader or chosen prefix), and a test
// compares that transcript with the one a person reviewed, kept in testdata/*.txt.
//
// A script is line-oriented:
//
//   # a comment                    copied to the transcript as it is
//   > command args                 run; copied, then followed by its output
//     output (two-space indent)    what a command printed last time: skipped on input
//   (blank)                        copied
//
// so a reviewed transcript is itself a valid script.
//
// Commands (node ids are 1..N; `A->B` matches messages from A to B, either side may be `*`;
// a quoted "text" after it matches only messages whose description contains it):
//
//   cluster N [voters=V] [probe=B] [checkquorum=B] [election=T] [heartbeat=T] [window=N]
//             [maxentries=N] [maxbytes=N] [inflight=N] [mutant=NAME]
//                                  N engines (seed = id), the first V (default N) voters;
//                                  must come first
//   campaign ID                    tick ID until its election timer runs out and it asks
//   elect ID                       set-up shorthand: campaign ID, stabilize, one heartbeat
//                                  round, stabilize — printing only each node's final state
//   tick ID... [xN]                tick each listed node (or `all`) N times, no delivery
//   propose ID "data"... [xN]      propose each datum N times at ID (a follower forwards it)
//   read ID REQUEST                ask ID for a linearizable read
//   forget ID                      ID forgets its leader and that leader's lease
//   transfer ID [TO]               ask leader ID to hand over (to TO, or its pick)
//   change ID voters=1,2 [learners=3]  ask leader ID for a configuration change
//   compact ID                     ID snapshots what it applied and compacts its log
//   deliver [A->B ["text"]]        deliver the queued messages (those matching) one round
//   stabilize                      deliver rounds until no message is queued
//   queue                          print the queued messages without delivering them
//   drop A->B ["text"] | drop all  drop queued messages now
//   partition 1 2 | 3 [| 4 5]      cut every link between the groups, both ways, until heal
//   heal                           restore every link
//   crash ID / restart ID          stop a node (its queued messages are lost), restart it
//                                  from its disk (which keeps everything written)
//   status                         role, ballot, leader, chosen prefix and last slot of each node
//   log ID...                      each node's slots: slot:ballot"value" (- a hole, cfg a
//                                  configuration, "" a no-op)
//   applied ID...                  what each node applied (no-ops and configurations left out)
//   members ID...                  each node's configuration: its voters, and while a change
//                                  waits for its α slots the old voters too (`& 1,2,3 (joint)`)
//
// Output lines:
//
//   1->2 <describePaxosMessage> [afterPersist]  a delivered message; `afterPersist` when the
//                                               engine released it only after its Ready's
//                                               writes were durable (promises, acceptances)
//   1->2 <...> (dropped: REASON) [xN]           not delivered (partition, crash, drop)
//   node 2: follower ballot=1.1 leader=1 commit=1  a node's state changed
//   node 2: read-state request=9 index=3        a read completed on node 2
//
// Pure like the rest of core/: it returns text and never prints.
import { utf8Decode } from "../common/utf8.js";
import type { LogEntry, NodeId } from "../engine/contract.js";
import { describeBallot } from "./ballot.js";
import { DEFAULT_PAXOS_CONFIG, type PaxosConfig } from "./config.js";
import { data, PaxosCluster, type Envelope } from "./harness.test-util.js";
import { describePaxosMessage } from "./messages.js";
import { isPaxosMutant, type PaxosMutant } from "./mutants.js";
import type { PaxosEngine } from "./paxos.js";

/** Runs `script` and returns its transcript (the script with every command's output filled in). */
export function runScript(script: string): string {
  const run = new ScriptRun();
  const transcript: string[] = [];
  script.split("\n").forEach((line, i) => {
    if (line.startsWith("  ")) return;
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
  readonly quoted: boolean;
}

function tokenize(command: string): Token[] {
  return Array.from(command.matchAll(/"([^"]*)"|(\S+)/g), (m) => (m[1] !== undefined ? { text: m[1], quoted: true } : { text: m[2] ?? "", quoted: false }));
}

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

function ids(text: string): NodeId[] {
  return text === "" ? [] : text.split(",").map((s) => positiveInt(s, "node id"));
}

function stateLine(cluster: PaxosCluster, id: NodeId): string {
  const s = cluster.engine(id).status();
  return `node ${id}: ${s.role} ballot=${describeBallot(s.term)} leader=${s.leader ?? "none"} commit=${s.commitIndex}`;
}

function messageLine(e: Envelope): string {
  return `${e.from}->${e.to} ${describePaxosMessage(e.message)}${e.afterPersist ? " afterPersist" : ""}`;
}

function slotText(entry: LogEntry): string {
  if (entry.term === 0) return `${entry.index}:-`;
  const value = entry.kind === "config" ? "cfg" : JSON.stringify(utf8Decode(entry.data));
  return `${entry.index}:${describeBallot(entry.term)}${value}`;
}

class ScriptRun {
  private cluster: PaxosCluster | null = null;
  private config: PaxosConfig = { ...DEFAULT_PAXOS_CONFIG };
  private readonly down = new Set<NodeId>();
  private readonly cut = new Set<string>();
  private readonly shown = new Map<NodeId, string>();
  private readonly readStatesShown = new Map<NodeId, number>();
  private out: string[] = [];
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
      case "read": {
        const id = this.node(args, 0);
        const admission = this.live(id).readIndex(positiveInt(this.arg(args, 1, "a request id"), "request id"));
        if (!admission.accepted) this.emit(`node ${id}: read refused: ${admission.error.message}`);
        this.settle();
        break;
      }
      case "forget":
        this.live(this.node(args, 0)).forgetLeader();
        this.noteChanges();
        break;
      case "transfer": {
        const id = this.node(args, 0);
        const to = args[1] === undefined ? null : this.node(args, 1);
        const admission = this.live(id).transferLeadership(to);
        if (!admission.accepted) this.emit(`node ${id}: transfer refused: ${admission.error.message}`);
        this.settle();
        break;
      }
      case "change":
        this.change(args);
        break;
      case "compact": {
        const id = this.node(args, 0);
        this.live(id);
        this.world().compact(id);
        this.emit(`node ${id}: snapshot at ${this.world().engine(id).status().snapshotIndex}`);
        break;
      }
      case "deliver":
        this.deliver(this.matcherOf(args));
        break;
      case "stabilize":
        this.stabilize();
        break;
      case "queue":
        for (const e of this.world().queue) this.emit(messageLine(e));
        break;
      case "drop":
        this.drop(args);
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
        for (const id of this.world().ids) this.emit(this.down.has(id) ? `node ${id}: down` : `${stateLine(this.world(), id)} last=${this.world().engine(id).status().lastIndex}`);
        break;
      case "log":
        this.logs(args);
        break;
      case "applied":
        for (const token of args) {
          const id = this.nodeId(token.text);
          const applied = this.world().appliedData(id);
          this.emit(`node ${id}: ${applied.length === 0 ? "(nothing)" : applied.map((text) => JSON.stringify(text)).join(" ")}`);
        }
        break;
      case "members":
        for (const token of args) {
          const id = this.nodeId(token.text);
          const m = this.world().engine(id).membership();
          this.emit(`node ${id}: voters ${m.voters.join(",")}${m.outgoing.length > 0 ? ` & ${m.outgoing.join(",")} (joint)` : ""}`);
        }
        break;
      default:
        throw new Error(`unknown command ${JSON.stringify(name?.text ?? "")}`);
    }
    return this.out;
  }

  // ---- arguments ----

  private world(): PaxosCluster {
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

  private live(id: NodeId): PaxosEngine {
    if (this.down.has(id)) throw new Error(`node ${id} is down`);
    return this.world().engine(id);
  }

  /** `A->B` and an optional quoted text the description must contain; nothing: every message. */
  private matcherOf(args: readonly Token[]): (e: Envelope) => boolean {
    if (args.length === 0) return () => true;
    const link = matcher(this.arg(args, 0, "A->B"));
    const text = args[1];
    if (text === undefined) return link;
    if (!text.quoted) throw new Error('the text to match goes in double quotes: deliver 1->2 "accept"');
    return (e) => link(e) && describePaxosMessage(e.message).includes(text.text);
  }

  // ---- commands ----

  private create(args: readonly Token[]): void {
    if (this.cluster !== null) throw new Error("the cluster already exists");
    const size = positiveInt(this.arg(args, 0, "the cluster size"), "cluster size");
    let voters = size;
    let mutant: PaxosMutant | null = null;
    for (const token of args.slice(1)) {
      const [key, value = ""] = token.text.split("=", 2);
      switch (key) {
        case "voters":
          voters = positiveInt(value, key);
          break;
        case "probe":
          this.config = { ...this.config, probe: boolean(value, key) };
          break;
        case "checkquorum":
          this.config = { ...this.config, checkQuorum: boolean(value, key) };
          break;
        case "election":
          this.config = { ...this.config, electionTicks: positiveInt(value, key) };
          break;
        case "heartbeat":
          this.config = { ...this.config, heartbeatTicks: positiveInt(value, key) };
          break;
        case "window":
          this.config = { ...this.config, windowSlots: positiveInt(value, key) };
          break;
        case "maxentries":
          this.config = { ...this.config, entriesPerMessageMax: positiveInt(value, key) };
          break;
        case "maxbytes":
          this.config = { ...this.config, bytesPerMessageMax: positiveInt(value, key), inflightBytesMax: Math.max(this.config.inflightBytesMax, positiveInt(value, key)) };
          break;
        case "inflight":
          this.config = { ...this.config, inflightMessagesMax: positiveInt(value, key) };
          break;
        case "mutant":
          if (!isPaxosMutant(value)) throw new Error(`unknown mutant ${JSON.stringify(value)}`);
          mutant = value;
          break;
        default:
          throw new Error(`unknown cluster option ${JSON.stringify(token.text)}`);
      }
    }
    this.cluster = new PaxosCluster(size, this.config, mutant, voters);
    for (const id of this.cluster.ids) this.shown.set(id, stateLine(this.cluster, id));
  }

  /** Ticks `id` until its election timer fires: it sends probes or prepares, or changes role. */
  private campaign(id: NodeId): void {
    const c = this.world();
    const engine = this.live(id);
    const before = engine.status();
    if (before.role === "leader") throw new Error(`node ${id} leads already`);
    const sentBefore = c.sent.length;
    const printedBefore = this.out.length;
    for (let i = 0; i < 2 * this.config.electionTicks; i++) {
      engine.tick();
      this.flush();
      const after = engine.status();
      const asked = c.sent.slice(sentBefore).some((e) => e.from === id && e.message.type === "prepare");
      if (asked || after.role !== before.role || after.term !== before.term) {
        this.noteChanges();
        if (this.out.length === printedBefore) this.emit(`${stateLine(c, id)} (campaigns again)`);
        return;
      }
    }
    throw new Error(`node ${id} did not campaign within ${2 * this.config.electionTicks} ticks`);
  }

  private elect(id: NodeId): void {
    this.quiet = true;
    try {
      for (const other of this.world().ids) if (other !== id && !this.down.has(other)) this.world().engine(other).forgetLeader();
      this.campaign(id);
      this.stabilize();
      if (this.world().engine(id).status().role !== "leader") throw new Error(`node ${id} did not win the election`);
      for (let i = 0; i < this.config.heartbeatTicks; i++) this.live(id).tick();
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
    const which = args.length === 1 && args[0]?.text === "all" ? this.world().ids.filter((id) => !this.down.has(id)) : args.map((t) => this.nodeId(t.text));
    for (let k = 1; k <= times; k++) {
      for (const id of which) this.live(id).tick();
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
    this.settle();
  }

  private change(args: readonly Token[]): void {
    const id = this.node(args, 0);
    let voters: NodeId[] = [];
    let learners: NodeId[] = [];
    for (const token of args.slice(1)) {
      const [key, value = ""] = token.text.split("=", 2);
      if (key === "voters") voters = ids(value);
      else if (key === "learners") learners = ids(value);
      else throw new Error(`change ID voters=1,2 [learners=3]: unknown ${JSON.stringify(token.text)}`);
    }
    const admission = this.live(id).changeMembership({ voters, learners, context: new Uint8Array(0) });
    if (!admission.accepted) this.emit(`node ${id}: change refused: ${admission.error.message}`);
    this.settle();
  }

  private settle(): void {
    this.noteChanges();
    this.flush();
  }

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

  private drop(args: readonly Token[]): void {
    const c = this.world();
    const matches = args[0]?.text === "all" ? () => true : this.matcherOf(args);
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
    this.flush();
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
    this.settle();
  }

  private logs(args: readonly Token[]): void {
    if (args.length === 0) throw new Error("log which nodes?");
    for (const token of args) {
      const id = this.nodeId(token.text);
      const engine = this.world().engine(id);
      const status = engine.status();
      const slots: string[] = [];
      for (let index = status.snapshotIndex + 1; index <= status.lastIndex; index++) slots.push(slotText(engine.entry(index) as LogEntry));
      const snapshot = status.snapshotIndex > 0 ? `(snapshot ${status.snapshotIndex}) ` : "";
      this.emit(`node ${id}: ${snapshot}${slots.length > 0 ? slots.join(" ") : "(empty)"}`);
    }
  }

  // ---- reporting ----

  private emit(line: string): void {
    if (!this.quiet) this.out.push(line);
  }

  private flush(): void {
    const c = this.world();
    c.flush();
    for (const id of c.ids) {
      const states = c.readStates.get(id) ?? [];
      for (const state of states.slice(this.readStatesShown.get(id) ?? 0)) this.emit(`node ${id}: read-state request=${state.requestId} index=${state.index}`);
      this.readStatesShown.set(id, states.length);
    }
  }

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

  private printGrouped(lines: readonly string[]): void {
    const counts = new Map<string, number>();
    for (const line of lines) counts.set(line, (counts.get(line) ?? 0) + 1);
    for (const [line, count] of counts) this.emit(count > 1 ? `${line} x${count}` : line);
  }
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
