// The replica's loop, rule by rule (core/engine/contract.ts), against a scripted engine, an
// in-memory log, a manual clock and a recording network: what leaves when, what applies
// when, and how waiting requests end.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { NotLeaderError } from "../common/errors.js";
import type { Admission, CompactionFloor, Engine, EngineStatus, LogEntry, Membership, Ready, ReadOptions, Snapshot } from "../engine/contract.js";
import type { Clock, LogStorage, LogWrite, SnapshotBuilder, StateMachine } from "./contract.js";
import { RequestTimeoutError, WriteOutcomeUnknownError } from "./errors.js";
import { Replica, type RestOptions } from "./replica.js";

type Message = string;
type Hard = { readonly term: number };

const entry = (index: number, text = `e${index}`): LogEntry => ({ index, term: 1, data: new TextEncoder().encode(text) });

function emptyReady(parts: Partial<Ready<Message, Hard>>): Ready<Message, Hard> {
  return { hardState: null, entries: [], snapshot: null, messages: [], messagesAfterPersist: [], committedEntries: [], readStates: [], ...parts };
}

/** An engine whose Readies the test queues; it records what the replica does to it. */
class ScriptedEngine implements Engine<Message, Hard> {
  readonly id = 1;
  readies: Ready<Message, Hard>[] = [];
  ticks = 0;
  proposals: Uint8Array[] = [];
  reads: number[] = [];
  refuse: Error | null = null;
  snapshotIndex = 0;
  compacted: number[] = [];
  role: EngineStatus["role"] = "leader";
  leader: number | null = 1;
  term = 1;
  /** The configuration, as the test sets it (none: the replica sees no membership). */
  config: Membership | undefined = undefined;
  membership(): Membership {
    return this.config as Membership;
  }

  /** Quiet (Engine.quiescent), as the test sets it; `wake` ends it. */
  quiet = false;
  tick(): void {
    this.ticks++;
  }
  quiescent(): boolean {
    return this.quiet;
  }
  wake(): void {
    this.quiet = false;
  }
  step(): void {}
  propose(data: Uint8Array): Admission {
    if (this.refuse !== null) return { accepted: false, error: this.refuse as NotLeaderError };
    this.proposals.push(data);
    return { accepted: true };
  }
  readIndex(requestId: number, _options?: ReadOptions): Admission {
    this.reads.push(requestId);
    return { accepted: true };
  }
  /** Whether it hands out the next Ready before the last is advanced. */
  pipelines = false;
  outstandingQueue: Ready<Message, Hard>[] = [];
  advanced: Ready<Message, Hard>[] = [];
  hasReady(): boolean {
    return (this.pipelines || this.outstandingQueue.length === 0) && this.readies.length > 0;
  }
  ready(): Ready<Message, Hard> {
    assert.ok(this.pipelines || this.outstandingQueue.length === 0, "a second Ready while one is outstanding");
    const ready = this.readies.shift() as Ready<Message, Hard>;
    this.outstandingQueue.push(ready);
    return ready;
  }
  /** The last committed entry a Ready handed out and advanced (the Raft engine compacts no further). */
  advancedThrough = 0;
  advance(ready: Ready<Message, Hard>): void {
    assert.equal(ready, this.outstandingQueue.shift(), "advanced out of order");
    this.advancedThrough = ready.committedEntries[ready.committedEntries.length - 1]?.index ?? this.advancedThrough;
    this.advanced.push(ready);
  }
  status(): EngineStatus {
    return { id: 1, role: this.role, term: this.term, leader: this.leader, commitIndex: 0, lastIndex: 0, snapshotIndex: this.snapshotIndex };
  }
  entryTerm(): number | null {
    return 1;
  }
  compact(index: number): Snapshot | null {
    assert.ok(index <= this.advancedThrough, `compaction at ${index}, beyond the applied entries advanced (${this.advancedThrough})`);
    this.compacted.push(index);
    this.snapshotIndex = index;
    return null;
  }
  /** Snapshots offered for followers, the log kept (Engine.offerSnapshot). */
  offered: number[] = [];
  offerSnapshot(index: number): Snapshot | null {
    this.offered.push(index);
    return null;
  }
  /** What compaction must keep for followers, as the test sets it (none by default). */
  floor: CompactionFloor | null = null;
  /** The snapshot a follower waits for, as the test sets it (none by default). */
  wanted = 0;
  /** A follower waits for the state a held snapshot at `snapshotIndex` names (as the Raft engine says: that index). */
  heldWanted = false;
  snapshotWanted(): number {
    if (this.heldWanted) return this.offered.includes(this.snapshotIndex) ? 0 : this.snapshotIndex;
    return Math.max(this.snapshotIndex, ...this.offered) >= this.wanted ? 0 : this.wanted;
  }
  compactionFloor(): CompactionFloor | null {
    return this.floor;
  }
}

/** Applies entries by remembering their text; a proposal's key is its text. */
class ListStateMachine implements StateMachine<string> {
  applied: string[] = [];
  appliedIndex = 0;
  apply(entries: readonly LogEntry[]): readonly string[] {
    return entries.map((e) => {
      assert.equal(e.index, this.appliedIndex + 1, "applied out of order");
      this.appliedIndex = e.index;
      const text = new TextDecoder().decode(e.data);
      this.applied.push(text);
      return text;
    });
  }
  restore(snapshot: Snapshot): void {
    this.appliedIndex = snapshot.index;
  }
  beginSnapshot(): SnapshotBuilder {
    const index = this.appliedIndex;
    return { index, data: new Uint8Array([index]), step: () => true, abort: () => undefined };
  }
  proposalKey(result: string): string {
    return result;
  }
}

/** A log whose syncs complete when the test says, and a record of every call. */
class ManualStorage implements LogStorage<Hard> {
  saved: LogWrite<Hard>[] = [];
  syncs: ((error: unknown) => void)[] = [];
  compacted: number[] = [];
  inline = false;
  save(write: LogWrite<Hard>): void {
    this.saved.push(write);
  }
  sync(done: (error: unknown) => void): void {
    if (this.inline) done(null);
    else this.syncs.push(done);
  }
  prepareSnapshot(_snapshot: Snapshot, done: (error: unknown) => void): void {
    done(null);
  }
  compact(snapshot: Snapshot): void {
    assert.equal(this.syncs.length, 0, "compact while a sync runs");
    this.compacted.push(snapshot.index);
  }
  completeSync(error: unknown = null): void {
    const done = this.syncs.shift();
    assert.ok(done !== undefined, "no sync runs");
    done(error);
  }
}

class ManualClock implements Clock {
  now = 0;
  queue: (() => void)[] = [];
  timers: { intervalMs: number; action: () => void }[] = [];
  nowMs(): number {
    return this.now;
  }
  soon(action: () => void): void {
    this.queue.push(action);
  }
  every(intervalMs: number, action: () => void): () => void {
    const timer = { intervalMs, action };
    this.timers.push(timer);
    return () => (this.timers = this.timers.filter((t) => t !== timer));
  }
  /** Runs what was scheduled, and what that schedules, until nothing is left. */
  run(): void {
    for (let i = 0; i < 1000 && this.queue.length > 0; i++) (this.queue.shift() as () => void)();
  }
  advance(ms: number): void {
    this.now += ms;
    for (const timer of this.timers) timer.action();
    this.run();
  }
}

/** Queues Readies and wakes the replica, as any input would. */
function push(env: { engine: ScriptedEngine; replica: Replica<Message, Hard, string>; clock: ManualClock }, ...readies: Ready<Message, Hard>[]): void {
  env.engine.readies.push(...readies);
  env.replica.onTimer();
  env.clock.run();
}

function setup(options: { snapshotEntries?: number; requestTimeoutMs?: number; repropose?: boolean; rest?: RestOptions; heldSnapshot?: { replaced: () => void }; holdsCompaction?: (index: number) => boolean } = {}) {
  const engine = new ScriptedEngine();
  const machine = new ListStateMachine();
  const storage = new ManualStorage();
  const clock = new ManualClock();
  const sent: string[] = [];
  const fatal: unknown[] = [];
  const replica = new Replica<Message, Hard, string>({
    engine,
    storage,
    stateMachine: machine,
    network: { send: (to, message) => (sent.push(`${message}->${to}`), true) },
    clock,
    tickMs: 10,
    requestTimeoutMs: options.requestTimeoutMs ?? 1000,
    snapshotEntries: options.snapshotEntries ?? 0,
    pendingRequestsMax: 100,
    peerCount: 2,
    onFatal: (error) => fatal.push(error),
    ...(options.repropose === undefined ? {} : { reproposeOnLeaderChange: options.repropose }),
    ...(options.rest === undefined ? {} : { rest: options.rest }),
    ...(options.heldSnapshot === undefined ? {} : { heldSnapshot: options.heldSnapshot }),
    ...(options.holdsCompaction === undefined ? {} : { holdsCompaction: options.holdsCompaction }),
  });
  replica.start();
  return { engine, machine, storage, clock, sent, fatal, replica };
}

/** Entries 1-2 appended and synced, then applied while entry 3 syncs: a snapshot at 2 is due (snapshotEntries 2). */
function appendAndApplyTwo(env: ReturnType<typeof setup>): void {
  push(env, emptyReady({ entries: [entry(1), entry(2)] }));
  env.storage.completeSync();
  env.clock.run();
  push(env, emptyReady({ entries: [entry(3)], committedEntries: [entry(1), entry(2)] }));
  env.storage.completeSync();
  env.clock.run();
}

function waiter<T>() {
  const outcome = {} as { value?: T; error?: Error };
  return { outcome, waiter: { resolve: (value: T) => (outcome.value = value), reject: (error: Error) => (outcome.error = error) } };
}

/** Read through a call, so an assertion on one moment does not narrow the next. */
const errorOf = (w: { outcome: { error?: Error } }): Error | undefined => w.outcome.error;

describe("replica: the Ready loop (contract rules 3-7)", () => {
  test("messages leave at once; messagesAfterPersist only once the sync completed", () => {
    const env = setup();
    const { storage, clock, sent } = env;
    push(env, emptyReady({ hardState: { term: 2 }, messages: [{ to: 2, message: "append" }], messagesAfterPersist: [{ to: 2, message: "vote" }] }));
    assert.deepEqual(sent, ["append->2"]);
    assert.equal(storage.saved.length, 1);
    storage.completeSync();
    clock.run();
    assert.deepEqual(sent, ["append->2", "vote->2"]);
  });

  test("one Ready at a time: the next is taken only after the sync of the one in hand", () => {
    const env = setup();
    const { engine, storage, clock } = env;
    push(env, emptyReady({ entries: [entry(1)] }), emptyReady({ entries: [entry(2)] }));
    assert.equal(storage.saved.length, 1);
    assert.equal(engine.readies.length, 1, "the second Ready waits");
    storage.completeSync();
    clock.run();
    assert.equal(storage.saved.length, 2);
  });

  test("early apply: entries durable before this Ready apply during its sync; its own entries only after", () => {
    const env = setup();
    const { machine, storage, clock } = env;
    push(env, emptyReady({ entries: [entry(1), entry(2)] }));
    storage.completeSync();
    clock.run();
    // Entries 1 and 2 are durable; 3 arrives with their commit.
    push(env, emptyReady({ entries: [entry(3)], committedEntries: [entry(1), entry(2), entry(3)] }));
    assert.deepEqual(machine.applied, ["e1", "e2"], "what was durable applies while the sync runs");
    storage.completeSync();
    clock.run();
    assert.deepEqual(machine.applied, ["e1", "e2", "e3"]);
  });

  test("a storage that syncs before returning still applies in order", () => {
    const env = setup();
    const { machine, storage } = env;
    storage.inline = true;
    push(env, emptyReady({ entries: [entry(1)] }), emptyReady({ entries: [entry(2)], committedEntries: [entry(1), entry(2)] }));
    assert.deepEqual(machine.applied, ["e1", "e2"]);
  });

  test("a proposal resolves with its entry's result, matched by key; two waiters on one key both resolve", () => {
    const env = setup();
    const { engine, storage, clock, replica } = env;
    const first = waiter<string>();
    const retry = waiter<string>();
    replica.propose(new TextEncoder().encode("e1"), "e1", first.waiter);
    replica.propose(new TextEncoder().encode("e1"), "e1", retry.waiter);
    assert.equal(engine.proposals.length, 2);
    push(env, emptyReady({ entries: [entry(1)], committedEntries: [entry(1)] }));
    assert.equal(first.outcome.value, undefined, "not before the entry is durable");
    storage.completeSync();
    clock.run();
    assert.equal(first.outcome.value, "e1");
    assert.equal(retry.outcome.value, "e1");
  });

  test("a refused proposal rejects at once with the engine's error; one that never applies times out", () => {
    const { engine, clock, replica } = setup({ requestTimeoutMs: 100 });
    engine.refuse = new NotLeaderError(3);
    const refused = waiter<string>();
    replica.propose(new Uint8Array([1]), "a", refused.waiter);
    assert.ok(refused.outcome.error instanceof NotLeaderError);
    engine.refuse = null;
    const lost = waiter<string>();
    replica.propose(new Uint8Array([1]), "b", lost.waiter);
    clock.advance(50);
    assert.equal(errorOf(lost), undefined);
    clock.advance(60);
    assert.ok(lost.outcome.error instanceof RequestTimeoutError);
  });

  test("with reproposeOnLeaderChange, a waiting proposal is proposed again when another leader appears, in order, and resolves once", () => {
    for (const repropose of [true, false]) {
      const env = setup({ repropose });
      const { engine, storage, clock, replica } = env;
      engine.role = "follower";
      engine.leader = 2;
      clock.run();
      const first = waiter<string>();
      const second = waiter<string>();
      replica.propose(new TextEncoder().encode("e1"), "e1", first.waiter);
      replica.propose(new TextEncoder().encode("e2"), "e2", second.waiter);
      assert.equal(engine.proposals.length, 2);
      // Leader 2 dies before appending them; node 3 is elected.
      engine.leader = 3;
      engine.term = 2;
      replica.receive(3, "heartbeat");
      clock.run();
      const texts = engine.proposals.map((data) => new TextDecoder().decode(data));
      assert.deepEqual(texts, repropose ? ["e1", "e2", "e1", "e2"] : ["e1", "e2"], `repropose ${repropose}`);
      if (!repropose) continue;
      push(env, emptyReady({ entries: [entry(1), entry(2)], committedEntries: [entry(1), entry(2)] }));
      storage.completeSync();
      clock.run();
      assert.deepEqual([first.outcome.value, second.outcome.value], ["e1", "e2"]);
      // No leader known (an election under way): nothing is proposed again yet.
      const third = waiter<string>();
      replica.propose(new TextEncoder().encode("e3"), "e3", third.waiter);
      engine.leader = null;
      engine.term = 3;
      replica.receive(3, "vote");
      clock.run();
      assert.equal(engine.proposals.length, 5);
    }
  });

  test("a node removed from the group fails its waiting writes at once (outcome unknown) once it no longer leads, not after the request timeout", () => {
    const env = setup({ requestTimeoutMs: 5000 });
    const { engine, clock, replica } = env;
    const config = (voters: number[]): Membership => ({ voters, outgoing: [], learners: [], autoPromote: [], autoLeave: true, context: null }) as unknown as Membership;
    engine.config = config([1, 2, 3]);
    clock.run();
    const waiting = waiter<string>();
    replica.propose(new TextEncoder().encode("w"), "w", waiting.waiter);
    // The configuration that removes it is appended; it still leads (it hands over once that commits).
    engine.config = config([2, 3]);
    replica.receive(2, "append-response");
    clock.run();
    assert.equal(errorOf(waiting), undefined, "a removed leader's write may still commit");
    engine.role = "follower";
    engine.leader = null;
    engine.term = 2;
    replica.receive(2, "heartbeat");
    clock.run();
    assert.ok(errorOf(waiting) instanceof WriteOutcomeUnknownError, `ended with ${String(errorOf(waiting))}`);
    assert.match(String(errorOf(waiting)?.message), /removed from the group/);
    // A node not yet named by any configuration (joining) keeps its writes waiting.
    const joining = setup({ requestTimeoutMs: 5000 });
    joining.engine.role = "follower";
    joining.engine.config = config([2, 3]);
    joining.clock.run();
    const early = waiter<string>();
    joining.replica.propose(new TextEncoder().encode("x"), "x", early.waiter);
    joining.replica.receive(2, "heartbeat");
    joining.clock.run();
    assert.equal(errorOf(early), undefined);
  });

  test("ticks follow the monotonic clock: a stall is caught up before the next message is stepped", () => {
    const { engine, clock, replica } = setup();
    clock.advance(30);
    assert.equal(engine.ticks, 3);
    // The timer did not fire for 200 ms (a stalled event loop); a message arrives first.
    clock.now += 200;
    replica.receive(2, "hello");
    assert.equal(engine.ticks, 23);
  });

  test("a failed sync is fatal: the replica stops and every waiting write's outcome is unknown", () => {
    const env = setup();
    const { storage, replica, fatal } = env;
    const pending = waiter<string>();
    replica.propose(new Uint8Array([1]), "x", pending.waiter);
    push(env, emptyReady({ entries: [entry(1)] }));
    storage.completeSync(new Error("EIO"));
    assert.equal(fatal.length, 1);
    assert.ok(pending.outcome.error instanceof WriteOutcomeUnknownError);
    assert.ok(replica.isStopped);
  });

  test("snapshots: every N applied entries, compacted only while no sync runs, then the engine compacts", () => {
    const env = setup({ snapshotEntries: 2 });
    const { engine, storage, clock } = env;
    push(env, emptyReady({ entries: [entry(1), entry(2)] }));
    storage.completeSync();
    clock.run();
    push(env, emptyReady({ entries: [entry(3)], committedEntries: [entry(1), entry(2)] }));
    // Entries 1-2 applied early; the snapshot is captured, but the sync of entry 3 runs.
    assert.deepEqual(storage.compacted, []);
    storage.completeSync();
    clock.run();
    assert.deepEqual(storage.compacted, [2]);
    assert.deepEqual(engine.compacted, [2]);
  });

  test("a held snapshot (a range born of a split) is replaced by a full one at the first entry applied past it, whatever snapshotEntries says", () => {
    let replaced = 0;
    const env = setup({ snapshotEntries: 1000, heldSnapshot: { replaced: () => replaced++ } });
    const { engine, storage, clock } = env;
    // A live follower with nothing (it missed the split) needs a snapshot: it waits for this
    // one, so it holds nothing back (holding would wait for each other forever).
    engine.floor = { receiving: null, replicating: 0 };
    push(env, emptyReady({ entries: [entry(1)] }));
    storage.completeSync();
    clock.run();
    assert.deepEqual(storage.compacted, [], "nothing applied past it yet");
    push(env, emptyReady({ entries: [entry(2)], committedEntries: [entry(1)] }));
    storage.completeSync();
    clock.run();
    assert.deepEqual(storage.compacted, [1]);
    assert.deepEqual(engine.compacted, [1]);
    assert.equal(replaced, 1, "told once the log starts with a full snapshot");
    // From then on, every snapshotEntries as before.
    push(env, emptyReady({ entries: [entry(3)], committedEntries: [entry(2)] }));
    storage.completeSync();
    clock.run();
    assert.deepEqual(storage.compacted, [1]);
    assert.equal(replaced, 1);
  });

  test("with a full snapshot, compaction waits for a live follower a little behind, as before", () => {
    const env = setup({ snapshotEntries: 2 });
    const { engine, storage, clock } = env;
    engine.floor = { receiving: null, replicating: 0 };
    appendAndApplyTwo(env);
    assert.deepEqual(storage.compacted, [], "held for the follower");
    engine.floor = null;
    clock.advance(10);
    assert.deepEqual(storage.compacted, [2]);
  });

  test("a snapshot a follower waits for (Engine.snapshotWanted) is taken at once, whatever snapshotEntries says, even on an idle leader, and no follower a little behind holds it back", () => {
    const env = setup({ snapshotEntries: 1000 });
    const { engine, storage, clock } = env;
    engine.floor = { receiving: null, replicating: 0 };
    appendAndApplyTwo(env);
    assert.deepEqual(storage.compacted, [], "nothing asked for, and the follower holds the log");
    engine.wanted = 2;
    clock.advance(10);
    assert.deepEqual(storage.compacted, [2], "captured on the next tick, and compacted though a follower is behind");
    assert.deepEqual(engine.compacted, [2]);
  });

  test("a held first snapshot a follower waits for is captured at once at its own index, for the engine only: the storage keeps the held one", () => {
    let replaced = 0;
    const env = setup({ snapshotEntries: 1000, heldSnapshot: { replaced: () => replaced++ } });
    const { engine, storage, clock } = env;
    // The held snapshot is at 2, and the replica has applied through it: no entry past it yet.
    engine.snapshotIndex = 2;
    appendAndApplyTwo(env);
    clock.advance(10);
    assert.deepEqual(engine.compacted, [], "nothing asked for, nothing past the held snapshot");
    engine.heldWanted = true;
    clock.advance(10);
    assert.deepEqual(engine.offered, [2], "the engine got a full capture at the held index");
    assert.deepEqual(engine.compacted, [], "its log kept");
    assert.deepEqual(storage.compacted, [], "the storage keeps the held first state");
    assert.equal(replaced, 0, "not replaced yet: that waits for the first full snapshot past it");
  });

  test("a follower waits for a snapshot while the host holds compaction (a split whose child is still held): the capture is offered to the engine, the log kept, and compacted once released", () => {
    let held = true;
    const env = setup({ snapshotEntries: 1000, holdsCompaction: (index) => held && index >= 2 });
    const { engine, storage, clock } = env;
    appendAndApplyTwo(env);
    engine.wanted = 2;
    clock.advance(10);
    assert.deepEqual(engine.offered, [2], "sent to the follower from the engine");
    assert.deepEqual(engine.compacted, [], "the log kept");
    assert.deepEqual(storage.compacted, [], "and the storage's");
    held = false;
    clock.advance(10);
    assert.deepEqual(storage.compacted, [2], "saved at the next tick once released");
    assert.deepEqual(engine.compacted, [2]);
  });

  test("the host can hold compaction through an index (a split whose child is still held): the snapshot waits, and is taken once released", () => {
    let held = true;
    const env = setup({ snapshotEntries: 2, holdsCompaction: (index) => held && index >= 2 });
    const { engine, storage, clock } = env;
    appendAndApplyTwo(env);
    assert.deepEqual(storage.compacted, [], "held");
    held = false;
    clock.advance(10);
    assert.deepEqual(storage.compacted, [2], "taken at the next tick once released");
    assert.deepEqual(engine.compacted, [2]);
  });

  test("pipelined Readies: the next is taken while the last syncs; each is finished in order once a sync covers it", () => {
    const env = setup();
    const { engine, machine, storage, clock, sent } = env;
    engine.pipelines = true;
    const first = emptyReady({ entries: [entry(1), entry(2)], messages: [{ to: 2, message: "append-1" }], messagesAfterPersist: [{ to: 2, message: "ack-1" }] });
    push(env, first);
    // A second Ready while the first syncs: its appends leave at once.
    const second = emptyReady({ entries: [entry(3)], committedEntries: [entry(1), entry(2), entry(3)], messages: [{ to: 2, message: "append-2" }], messagesAfterPersist: [{ to: 2, message: "ack-2" }] });
    push(env, second);
    assert.deepEqual(sent, ["append-1->2", "append-2->2"]);
    assert.deepEqual(machine.applied, [], "entries 1-2 are not durable yet");
    assert.equal(storage.syncs.length, 1, "one sync at a time");
    storage.completeSync();
    clock.run();
    // The first sync covered only the first Ready: it finishes; entries 1-2 apply; 3 waits.
    assert.deepEqual(sent, ["append-1->2", "append-2->2", "ack-1->2"]);
    assert.deepEqual(machine.applied, ["e1", "e2"]);
    assert.deepEqual(engine.advanced, [first]);
    assert.equal(storage.syncs.length, 1, "the next sync started for the second Ready");
    storage.completeSync();
    clock.run();
    assert.deepEqual(sent, ["append-1->2", "append-2->2", "ack-1->2", "ack-2->2"]);
    assert.deepEqual(machine.applied, ["e1", "e2", "e3"]);
    assert.deepEqual(engine.advanced, [first, second]);
  });

  test("a capture of entries applied early waits to compact until the engine has been told they applied (a sync that ends before theirs starts)", () => {
    const env = setup({ snapshotEntries: 1000 });
    const { engine, machine, storage, clock } = env;
    engine.pipelines = true;
    push(env, emptyReady({ entries: [entry(1), entry(2)] }));
    storage.completeSync();
    clock.run();
    // A Ready with only a vote syncs; the next commits 1-2 (durable: applied early) and waits its turn to sync.
    push(env, emptyReady({ hardState: { term: 2 } }));
    const commits = emptyReady({ entries: [entry(3)], committedEntries: [entry(1), entry(2)] });
    push(env, commits);
    assert.deepEqual(machine.applied, ["e1", "e2"]);
    // A follower waits for a snapshot at 2: the timer captures one at once.
    engine.wanted = 2;
    clock.advance(10);
    storage.completeSync(); // the vote's: the Ready that commits 1-2 is not finished yet
    clock.run();
    assert.deepEqual(engine.compacted, [], "not before the engine knows 1-2 applied");
    storage.completeSync();
    clock.run();
    assert.ok(engine.advanced.includes(commits));
    assert.deepEqual(engine.compacted, [2], "then compacted");
    assert.deepEqual(storage.compacted, [2]);
  });

  test("a Ready whose only change is the commit index (mustSync false) is not synced; it finishes in order", () => {
    const env = setup();
    const { engine, storage, clock } = env;
    engine.pipelines = true;
    push(env, emptyReady({ hardState: { term: 1 }, mustSync: false }));
    assert.equal(storage.syncs.length, 0, "nothing to wait for");
    assert.equal(engine.advanced.length, 1);
    const withEntries = emptyReady({ entries: [entry(1)] });
    const commitOnly = emptyReady({ hardState: { term: 1 }, mustSync: false });
    push(env, withEntries, commitOnly);
    assert.equal(storage.syncs.length, 1);
    assert.deepEqual(engine.advanced.length, 1, "the commit-only Ready waits behind the one before it");
    storage.completeSync();
    clock.run();
    assert.equal(engine.advanced.length, 3);
  });

  test("a linearizable read resolves only once the state machine applied its index", () => {
    const env = setup();
    const { engine, storage, clock, replica } = env;
    const read = waiter<void>();
    replica.read({}, read.waiter);
    const id = engine.reads[0] as number;
    push(env, emptyReady({ entries: [entry(1)], readStates: [{ requestId: id, index: 1 }] }));
    storage.completeSync();
    clock.run();
    assert.equal("value" in read.outcome, false, "index 1 is not applied yet");
    push(env, emptyReady({ committedEntries: [entry(1)] }));
    assert.equal("value" in read.outcome, true);
  });
});

describe("replica: resting while quiet (ReplicaOptions.rest)", () => {
  /** A replica with `rest`, the host's ticks counted and its idleness set by the test. */
  function resting() {
    const host = { ticks: 0, idle: false };
    const env = setup({ rest: { idle: () => host.idle, tick: () => host.ticks++ } });
    return { ...env, host };
  }

  test("the timer stops once the engine is quiet and the host idle; an input starts it again, owing no tick slept through", () => {
    const { engine, clock, replica, host } = resting();
    clock.advance(10);
    assert.deepEqual([engine.ticks, host.ticks, clock.timers.length], [1, 1, 1], "awake: the engine and the host tick on one timer");
    engine.quiet = true;
    clock.advance(10);
    assert.equal(clock.timers.length, 1, "the host is not idle: the timer runs on");
    host.idle = true;
    clock.advance(10);
    assert.equal(clock.timers.length, 0, "quiet and idle: no timer");
    const ticks = engine.ticks;
    clock.advance(1000);
    assert.deepEqual([engine.ticks, host.ticks], [ticks, 3], "nothing ticks while resting");
    engine.quiet = false;
    replica.receive(2, "append");
    assert.equal(clock.timers.length, 1, "a message starts the timer");
    clock.advance(10);
    assert.equal(engine.ticks, ticks + 1, "one tick for the 10 ms since, none for the 1,000 ms slept through");
  });

  test("a quiet engine's waiting request keeps the timer running, and still times out", () => {
    const { engine, clock, replica, host } = resting();
    host.idle = true;
    const read = waiter<void>();
    replica.read({}, read.waiter);
    engine.quiet = true;
    clock.advance(10);
    assert.equal(clock.timers.length, 1, "a read waits: the timer runs");
    clock.advance(1000);
    assert.ok(errorOf(read) instanceof RequestTimeoutError);
    clock.advance(10);
    assert.equal(clock.timers.length, 0, "nothing waits any more: it rests");
    replica.wake();
    assert.equal(clock.timers.length, 1, "wake starts the timer");
    assert.equal(engine.quiet, false);
  });

  test("without rest, a quiet engine's timer never stops", () => {
    const { engine, clock } = setup();
    engine.quiet = true;
    clock.advance(10);
    clock.advance(10);
    assert.deepEqual([engine.ticks, clock.timers.length], [2, 1]);
  });
});
