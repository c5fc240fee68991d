/**
 * A run's replay file (replay-trace.ts describes the format): the header, which knows the
 * verdict and so is written once the run is over, then its events.
 */
import { describeParams } from "./params.js";
import { REPLAY_FORMAT, REPLAY_FORMAT_VERSION, formatReplayTrace, type ReplayHeader } from "./replay-trace.js";
import { reproduceCommand } from "./run-report.js";
import type { SimResult } from "./simulation.js";

/** The header of `result`'s replay; `result` must come from a run with `replayEventsMax`. */
export function replayHeader(result: SimResult): ReplayHeader {
  const replay = result.replay;
  if (replay === undefined) throw new Error(`seed ${result.seed} was run without recording a replay (replayEventsMax)`);
  const failure = result.failure;
  return {
    type: "header",
    format: REPLAY_FORMAT,
    version: REPLAY_FORMAT_VERSION,
    seed: result.seed,
    protocol: result.protocol,
    mutant: result.mutant,
    scenario: result.params.scenario,
    nodes: Array.from({ length: result.params.nodes }, (_, i) => i + 1),
    params: describeParams(result.params),
    faultPhaseEndMicros: result.params.faultPhaseMicros,
    endMicros: result.stats.virtualMicros,
    verdict:
      failure === null
        ? { passed: true, checker: null, message: null, atMicros: null, atEvent: null }
        : { passed: false, checker: failure.checker, message: failure.message, atMicros: failure.atMicros, atEvent: replay.failureAtEvent },
    events: replay.events.length,
    eventsInRun: replay.eventsInRun,
    capped: replay.events.length < replay.eventsInRun,
    cappedAtMicros: replay.cappedAtMicros,
    reproduce: reproduceCommand(result),
  };
}

/** The whole file's text: a header line, then one line per event. */
export function replayFileText(result: SimResult): string {
  return formatReplayTrace(replayHeader(result), result.replay?.events ?? []);
}
