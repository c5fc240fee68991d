// The embedded state machine adapter: what reaches the user's apply, exactly once, matched
// to its proposer, and carried through snapshots — against a dumb reference for the
// exactly-once rule.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { AssertionError } from "../common/assert.js";
import { InvalidInputError } from "../common/errors.js";
import type { LogEntry } from "../engine/contract.js";
import { COMMAND_BYTES_MAX, EmbeddedReplica, EmbeddedStateMachine, encodeEnvelope, highestSequenceIn, SEQUENCE_WINDOW, type Command, type ReplicatedStateMachine, type StateSnapshotBuilder } from "./embedded.js";

const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);
const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

/** A state machine that keeps every command it applied, in order; each result is the command's text and index. */
class Journal implements ReplicatedStateMachine<string> {
  applied: string[] = [];
  calls: Command[][] = [];
  apply(commands: readonly Command[]): readonly string[] {
    this.calls.push([...commands]);
    return commands.map((command) => {
      this.applied.push(text(command.data));
      return `${text(command.data)}@${command.index}`;
    });
  }
  snapshot(): Uint8Array {
    return bytes(JSON.stringify(this.applied));
  }
  restore(snapshot: Uint8Array): void {
    this.applied = JSON.parse(text(snapshot)) as string[];
  }
}

const command = (index: number, proposer: number, sequence: number, payload = `p${proposer}s${sequence}`, firstSequence = 1): LogEntry => ({
  index,
  term: 1,
  data: encodeEnvelope({ proposer, firstSequence, sequence, command: bytes(payload) }),
});

describe("EmbeddedStateMachine", () => {
  test("the engine's no-ops and configuration entries never reach apply, and every entry gets a result", () => {
    const user = new Journal();
    const machine = new EmbeddedStateMachine(user, 1);
    const results = machine.apply([
      { index: 1, term: 1, data: new Uint8Array(0) },
      command(2, 1, 1, "a"),
      { index: 3, term: 1, data: bytes("{voters}"), kind: "config" },
      command(4, 2, 1, "b"),
    ]);
    assert.deepEqual(user.applied, ["a", "b"]);
    assert.deepEqual(user.calls, [[{ index: 2, data: bytes("a") }, { index: 4, data: bytes("b") }]], "one batch, with the log indexes");
    assert.deepEqual(results.map((r) => r.outcome), ["engine", "applied", "engine", "applied"]);
    assert.deepEqual(results.map((r) => r.result), [undefined, "a@2", undefined, "b@4"]);
    assert.equal(machine.appliedIndex, 4);
  });

  test("bytes that are no envelope are skipped, alike on every replica", () => {
    const entries: LogEntry[] = [
      { index: 1, term: 1, data: bytes("not an envelope") },
      { index: 2, term: 1, data: encodeEnvelope({ proposer: 1, firstSequence: 1, sequence: 1, command: bytes("x") }).slice(0, 10) },
      { index: 3, term: 1, data: (() => { const d = encodeEnvelope({ proposer: 1, firstSequence: 1, sequence: 1, command: bytes("x") }); d.fill(0, 1, 5); return d; })() },
      command(4, 1, 1, "ok"),
    ];
    const outcomes = [1, 2].map(() => {
      const user = new Journal();
      const results = new EmbeddedStateMachine(user, 1).apply(entries);
      return { applied: user.applied, outcomes: results.map((r) => r.outcome) };
    });
    assert.deepEqual(outcomes[0], { applied: ["ok"], outcomes: ["malformed", "malformed", "malformed", "applied"] });
    assert.deepEqual(outcomes[1], outcomes[0]);
  });

  test("a command in the log twice applies once; one that overtook an earlier one lets the earlier still apply", () => {
    const user = new Journal();
    const machine = new EmbeddedStateMachine(user, 1);
    const results = machine.apply([command(1, 1, 1), command(2, 1, 3), command(3, 1, 1), command(4, 1, 2), command(5, 1, 2), command(6, 1, 3)]);
    assert.deepEqual(user.applied, ["p1s1", "p1s3", "p1s2"]);
    assert.deepEqual(results.map((r) => r.outcome), ["applied", "applied", "duplicate", "applied", "duplicate", "duplicate"]);
  });

  test("a command of an earlier process of the node, arriving after the next process's, is stale", () => {
    const user = new Journal();
    const machine = new EmbeddedStateMachine(user, 1);
    const results = machine.apply([command(1, 1, 5, "old", 5), command(2, 1, 100_000, "new", 100_000), command(3, 1, 6, "late", 5)]);
    assert.deepEqual(user.applied, ["old", "new"]);
    assert.deepEqual(results.map((r) => r.outcome), ["applied", "applied", "stale"]);
  });

  test("a sequence far below the window is stale, whatever came before", () => {
    const user = new Journal();
    const machine = new EmbeddedStateMachine(user, 1);
    machine.apply([command(1, 1, SEQUENCE_WINDOW * 3)]);
    const [late] = machine.apply([command(2, 1, SEQUENCE_WINDOW, "late")]);
    assert.equal(late?.outcome, "stale");
    assert.deepEqual(user.applied, [`p1s${SEQUENCE_WINDOW * 3}`]);
  });

  test("only this node's applied commands name a proposal to answer", () => {
    const machine = new EmbeddedStateMachine(new Journal(), 2);
    const results = machine.apply([command(1, 2, 7), command(2, 1, 7), command(3, 2, 7), { index: 4, term: 1, data: new Uint8Array(0) }]);
    assert.deepEqual(results.map((r) => machine.proposalKey(r)), [7, null, null, null]);
  });

  test("a snapshot carries the state and the exactly-once memory; restore sets the applied index", () => {
    const source = new EmbeddedStateMachine(new Journal(), 1);
    source.apply([command(1, 1, 1), command(2, 1, 3), command(3, 2, 10)]);
    const builder = source.beginSnapshot();
    assert.equal(builder.index, 3);
    assert.equal(builder.step(100), true);
    const user = new Journal();
    const copy = new EmbeddedStateMachine(user, 1);
    copy.restore({ index: builder.index, term: 1, data: builder.data });
    assert.equal(copy.appliedIndex, 3);
    assert.deepEqual(user.applied, ["p1s1", "p1s3", "p2s10"]);
    // Sequence 1 and 3 applied, 2 is still owed; 10 of node 2 too.
    const results = copy.apply([command(4, 1, 3), command(5, 1, 2), command(6, 2, 10), command(7, 1, 2)]);
    assert.deepEqual(results.map((r) => r.outcome), ["duplicate", "applied", "duplicate", "duplicate"]);
    assert.equal(copy.highestSequence(1), 3);
    assert.equal(copy.highestSequence(3), 0);
  });

  test("an incremental capture is taken as of its start while apply goes on", () => {
    class Incremental extends Journal {
      beginSnapshot(): StateSnapshotBuilder {
        const frozen = [...this.applied];
        let steps = 0;
        return { step: () => ++steps >= 3, data: bytes(JSON.stringify(frozen)), abort: () => undefined };
      }
    }
    const machine = new EmbeddedStateMachine(new Incremental(), 1);
    machine.apply([command(1, 1, 1)]);
    const builder = machine.beginSnapshot();
    machine.apply([command(2, 1, 2)]);
    assert.equal(builder.step(1), false);
    assert.equal(builder.step(1), false);
    assert.equal(builder.step(1), true);
    const user = new Journal();
    new EmbeddedStateMachine(user, 1).restore({ index: builder.index, term: 1, data: builder.data });
    assert.deepEqual(user.applied, ["p1s1"]);
  });

  test("a snapshot that is not an embedded state machine's is refused with a message", () => {
    const machine = new EmbeddedStateMachine(new Journal(), 1);
    assert.throws(() => machine.restore({ index: 3, term: 1, data: bytes("{}") }), (error: unknown) => error instanceof InvalidInputError && /not an embedded state machine/.test(error.message));
  });

  test("a state machine that returns the wrong number of results is a programming error", () => {
    const broken: ReplicatedStateMachine<number> = { apply: () => [], snapshot: () => new Uint8Array(0), restore: () => undefined };
    assert.throws(() => new EmbeddedStateMachine(broken, 1).apply([command(1, 1, 1)]), (error: unknown) => error instanceof AssertionError && /one result per command/.test(error.message));
  });

  test("exactly once, against a dumb reference: random duplicates and reorders, with a snapshot and restore in between", () => {
    // Commands of three proposers, each numbering 1..n, appear in a random order, some
    // several times. Within the window, the reference applies a command the first time it
    // is seen.
    const entry = fc.record({ proposer: fc.integer({ min: 1, max: 3 }), sequence: fc.integer({ min: 1, max: 40 }) });
    fc.assert(
      fc.property(fc.array(entry, { maxLength: 120 }), fc.nat(120), (log, cut) => {
        const seen = new Set<string>();
        const expected: string[] = [];
        for (const { proposer, sequence } of log) {
          const key = `p${proposer}s${sequence}`;
          if (!seen.has(key)) expected.push(key);
          seen.add(key);
        }
        const entries = log.map(({ proposer, sequence }, i) => command(i + 1, proposer, sequence));
        const at = Math.min(cut, entries.length);
        const first = new EmbeddedStateMachine(new Journal(), 1);
        first.apply(entries.slice(0, at));
        const builder = first.beginSnapshot();
        builder.step(1);
        const user = new Journal();
        const second = new EmbeddedStateMachine(user, 1);
        second.restore({ index: at, term: 1, data: builder.data });
        second.apply(entries.slice(at));
        assert.deepEqual(user.applied, expected);
      }),
      { numRuns: 300 },
    );
  });

  test("highestSequenceIn finds a node's last numbered command in a log", () => {
    const entries = [command(1, 1, 4), command(2, 2, 9), command(3, 1, 2), { index: 4, term: 1, data: new Uint8Array(0) }];
    assert.equal(highestSequenceIn(entries, 1), 4);
    assert.equal(highestSequenceIn(entries, 3), 0);
  });
});

describe("EmbeddedReplica.propose", () => {
  const replica = (): EmbeddedReplica<unknown, unknown, string> =>
    new EmbeddedReplica<unknown, unknown, string>({
      engine: { id: 1, propose: () => ({ accepted: true }), hasReady: () => false, status: () => ({ id: 1, role: "leader", term: 1, leader: 1, commitIndex: 0, lastIndex: 0, snapshotIndex: 0 }) } as never,
      stateMachine: new EmbeddedStateMachine(new Journal(), 1),
      storage: {} as never,
      network: { send: () => true },
      clock: { nowMs: () => 0, soon: () => undefined, every: () => () => undefined },
      tickMs: 10,
      requestTimeoutMs: 1000,
      snapshotEntries: 0,
      pendingRequestsMax: 10,
      peerCount: 0,
      firstSequence: 1,
      onFatal: () => undefined,
    });

  test("refuses a command over the limit, and one that is not bytes, before proposing anything", () => {
    const errors: Error[] = [];
    const waiter = { resolve: () => assert.fail("resolved"), reject: (error: Error) => errors.push(error) };
    assert.equal(replica().propose(new Uint8Array(COMMAND_BYTES_MAX + 1), waiter), null);
    assert.equal(replica().propose("text" as unknown as Uint8Array, waiter), null);
    assert.equal(errors.length, 2);
    assert.ok(errors.every((error) => error instanceof InvalidInputError));
    assert.match(errors[0]?.message ?? "", /over the limit/);
    assert.match(errors[1]?.message ?? "", /Uint8Array/);
  });

  test("numbers commands consecutively from its first sequence", () => {
    const node = replica();
    const waiter = { resolve: () => undefined, reject: (error: Error) => assert.fail(error) };
    assert.deepEqual([node.propose(bytes("a"), waiter), node.propose(bytes("b"), waiter)], [1, 2]);
  });

  test("proposes its waiting commands again, the same bytes, when another leader appears", () => {
    const proposed: Uint8Array[] = [];
    const status = { id: 1, role: "follower" as const, term: 1, leader: 2 as number | null, commitIndex: 0, lastIndex: 0, snapshotIndex: 0 };
    const soon: (() => void)[] = [];
    const flush = (): void => {
      while (soon.length > 0) (soon.shift() as () => void)();
    };
    const node = new EmbeddedReplica<unknown, unknown, string>({
      engine: { id: 1, propose: (data: Uint8Array) => (proposed.push(data), { accepted: true }), hasReady: () => false, status: () => status, tick: () => undefined } as never,
      stateMachine: new EmbeddedStateMachine(new Journal(), 1),
      storage: {} as never,
      network: { send: () => true },
      clock: { nowMs: () => 0, soon: (action) => soon.push(action), every: () => () => undefined },
      tickMs: 10,
      requestTimeoutMs: 1000,
      snapshotEntries: 0,
      pendingRequestsMax: 10,
      peerCount: 2,
      firstSequence: 1,
      onFatal: () => undefined,
    });
    node.start();
    flush();
    const waiter = { resolve: () => undefined, reject: (error: Error) => assert.fail(error) };
    node.propose(bytes("a"), waiter);
    node.propose(bytes("b"), waiter);
    flush();
    assert.equal(proposed.length, 2);
    // Node 2 died; node 3 leads a new term.
    status.term = 2;
    status.leader = 3;
    node.replica.onTimer();
    flush();
    assert.deepEqual(proposed.slice(2), proposed.slice(0, 2), "the same envelopes again: they apply once whichever copy commits");
  });
});
