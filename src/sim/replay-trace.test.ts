/**
 * The replay file (replay-trace.ts, replay-file.ts) and its reader (replay-model.ts): the same
 * seed writes the same bytes, recording changes nothing in the run, the header's verdict is the
 * checkers' (a passing seed, and a mutant's failing one), the file is bounded, and the reader
 * rebuilds the cluster at any moment from it.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { EngineFactory } from "../core/engine/contract.js";
import { PROTOCOLS } from "./protocols.js";
import { replayFileText, replayHeader } from "./replay-file.js";
import { Replay, ReplayFormatError } from "./replay-model.js";
import { REPLAY_EVENTS_MAX, type ReplayEvent } from "./replay-trace.js";
import { runSimulation, type SimResult } from "./simulation.js";

const raft = PROTOCOLS.get("raft") as EngineFactory<unknown, unknown>;
/** A passing Raft seed, and a mutant with a seed it fails (both short runs). */
const PASSING = { protocol: raft, seed: 500 } as const;
const FAILING = { protocol: raft, seed: 8, mutant: "apply-before-commit" } as const;

function run(options: Parameters<typeof runSimulation>[0]): SimResult {
  return runSimulation(options);
}

function withoutReplay(result: SimResult): unknown {
  const { replay: _replay, ...rest } = result;
  return JSON.parse(JSON.stringify(rest));
}

describe("the replay file", () => {
  const passing = run({ ...PASSING, replayEventsMax: REPLAY_EVENTS_MAX });
  const text = replayFileText(passing);

  test("one seed writes the same bytes every time", () => {
    const again = replayFileText(run({ ...PASSING, replayEventsMax: REPLAY_EVENTS_MAX }));
    assert.equal(again.length, text.length);
    assert.ok(again === text, "the second run's file differs from the first's");
  });

  test("recording changes nothing in the run: history, stats, verdict and the whole text trace are those of a run without it", () => {
    for (const options of [PASSING, FAILING]) {
      const recorded = run({ ...options, fullTrace: true, replayEventsMax: REPLAY_EVENTS_MAX });
      const plain = run({ ...options, fullTrace: true });
      assert.ok((recorded.replay?.events.length ?? 0) > 0 && plain.replay === undefined);
      assert.ok(plain.trace.length > 500, `seed ${options.seed}: ${plain.trace.length} trace lines`);
      assert.deepEqual(withoutReplay(recorded), withoutReplay(plain), `seed ${options.seed}`);
    }
  });

  test("a passing seed: the header says passed, and the events tell the run (messages, states, client operations)", () => {
    const lines = text.trimEnd().split("\n");
    const header = JSON.parse(lines[0] as string) as ReturnType<typeof replayHeader>;
    assert.equal(passing.failure, null);
    assert.deepEqual(header.verdict, { passed: true, checker: null, message: null, atMicros: null, atEvent: null });
    assert.equal(header.seed, PASSING.seed);
    assert.equal(header.protocol, "raft");
    assert.equal(header.capped, false);
    assert.equal(header.events, lines.length - 1);
    assert.equal(header.endMicros, passing.stats.virtualMicros);
    const events = lines.slice(1).map((line) => JSON.parse(line) as ReplayEvent);
    const kinds = new Set(events.map((event) => event.e));
    for (const kind of ["send", "recv", "state", "op", "result"]) assert.ok(kinds.has(kind as ReplayEvent["e"]), `no ${kind} event`);
    const sends = events.filter((event) => event.e === "send").length;
    const lost = events.filter((event) => event.e === "lost").length;
    assert.equal(sends + lost >= passing.stats.messagesSent, true, `${sends} sent and ${lost} lost, of ${passing.stats.messagesSent} messages`);
    assert.equal(events.filter((event) => event.e === "result").length, passing.history.length);
    for (let i = 1; i < events.length; i++) assert.ok((events[i] as ReplayEvent).t >= (events[i - 1] as ReplayEvent).t, `event ${i} goes back in time`);
  });

  test("a failing mutant seed: the header names the checker, its message and when it failed", () => {
    const failing = run({ ...FAILING, replayEventsMax: REPLAY_EVENTS_MAX });
    assert.notEqual(failing.failure, null, `the mutant ${FAILING.mutant} passed seed ${FAILING.seed}`);
    const header = replayHeader(failing);
    assert.equal(header.verdict.passed, false);
    assert.equal(header.verdict.checker, failing.failure?.checker);
    assert.equal(header.verdict.message, failing.failure?.message);
    assert.equal(header.verdict.atMicros, failing.failure?.atMicros);
    assert.ok(header.verdict.atEvent !== null && header.verdict.atEvent > 0 && header.verdict.atEvent <= header.events);
    assert.equal(header.mutant, FAILING.mutant);
    assert.match(header.reproduce, new RegExp(`--mutant ${FAILING.mutant} .*--seed ${FAILING.seed}`));
  });

  test("the file is bounded: past the cap it keeps nothing and the header says where it stops", () => {
    const capped = run({ ...PASSING, replayEventsMax: 500 });
    const header = replayHeader(capped);
    assert.equal(header.events, 500);
    assert.equal(header.eventsInRun, passing.replay?.eventsInRun);
    assert.equal(header.capped, true);
    assert.equal(header.cappedAtMicros, (passing.replay?.events[500] as ReplayEvent).t);
  });
});

describe("reading a replay", () => {
  const passing = run({ ...PASSING, replayEventsMax: REPLAY_EVENTS_MAX });
  const replay = Replay.parse(replayFileText(passing));

  test("at the end, the nodes are as the run left them: one leader, every node's last state", () => {
    const end = replay.stateAfter(replay.countAt(replay.endMicros));
    const leaders = end.nodes.filter((node) => node.role === "leader");
    assert.equal(leaders.length >= 1, true, JSON.stringify(end.nodes));
    for (const node of end.nodes) {
      const last = [...replay.events].reverse().find((event) => event.e === "state" && event.node === node.id);
      assert.ok(last !== undefined && last.e === "state");
      assert.equal(node.role, last.role);
      assert.equal(node.commit, last.commit);
    }
    assert.deepEqual(end.cut, []);
    // Every acknowledged write is an entry of its own, committed: the leader's commit index counts them all.
    const acknowledgedWrites = passing.history.filter((op) => op.status === "ok" && op.op !== "get").length;
    assert.ok(acknowledgedWrites > 100 && (leaders[0]?.commit ?? 0) >= acknowledgedWrites, `leader commit ${leaders[0]?.commit}, ${acknowledgedWrites} acknowledged writes`);
  });

  test("a state asked for at any moment equals folding every event up to it (checkpoints agree)", () => {
    for (const count of [0, 1, 999, 1000, 1001, 2500, replay.events.length]) {
      const fromCheckpoint = replay.stateAfter(count);
      let node = new Map<number, string>();
      for (const event of replay.events.slice(0, count)) if (event.e === "state") node = new Map(node).set(event.node, `${event.role}/${event.term}/${event.commit}`);
      for (const shown of fromCheckpoint.nodes) if (node.has(shown.id)) assert.equal(`${shown.role}/${shown.term}/${shown.commit}`, node.get(shown.id), `after ${count} events, node ${shown.id}`);
    }
  });

  test("messages in flight at a moment are those sent before it and arriving after it", () => {
    const message = replay.messages[Math.floor(replay.messages.length / 2)];
    assert.ok(message !== undefined && message.endAt > message.sentAt);
    const t = (message.sentAt + message.endAt) / 2;
    const flying = replay.inFlight(t, 10_000);
    assert.ok(flying.some((f) => f.message.id === message.id));
    for (const f of flying) assert.ok(f.message.sentAt <= t && f.message.endAt > t && f.progress >= 0 && f.progress < 1);
    const expected = replay.messages.filter((m) => m.sentAt <= t && m.endAt > t).length;
    assert.equal(flying.length, expected);
  });

  test("a file that is not a replay is refused with the line and the reason", () => {
    assert.throws(() => Replay.parse("seed=1 scenario=mixed\n"), (error: unknown) => error instanceof ReplayFormatError && /line 1 is not JSON/.test(error.message));
    assert.throws(() => Replay.parse('{"type":"history"}\n'), (error: unknown) => error instanceof ReplayFormatError && /line 1 is not a synod-sim-trace header/.test(error.message));
    const lines = replayFileText(passing).split("\n");
    assert.throws(() => Replay.parse([lines[0], lines[2], lines[1]].join("\n")), (error: unknown) => error instanceof ReplayFormatError && /line 3: time/.test(error.message));
    assert.throws(() => Replay.parse([lines[0], "[1,2]"].join("\n")), (error: unknown) => error instanceof ReplayFormatError && /line 2 is not a JSON object/.test(error.message));
  });
});
