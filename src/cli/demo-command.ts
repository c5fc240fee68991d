import { simCommand } from "./sim-command.js";
import { FAULT_CLASSES } from "../sim/params.js";

/**
 * What `npm start` runs until the node runtime lands: two short simulations that show the
 * test backbone at work. It does not pretend to be a cluster.
 */
export async function demoCommand(workers: number): Promise<number> {
  const say = (text: string): void => void process.stdout.write(`${text}\n`);
  say("synod: the replicated cluster (synod cluster) arrives with the node runtime; today the");
  say("deterministic simulator and its checkers are here. Two short runs show them working.\n");
  say("1. The positive control: one durable node, correct by construction. Every fault class is");
  say("   on (crashes that lose unsynced writes, pauses, dropped and delayed messages); all pass.\n");
  const good = await simCommand({ protocol: "single", seeds: 20, seed: 1, faults: [...FAULT_CLASSES], json: false, workers, verbose: false });
  say("\n2. The negative control: a primary that acknowledges writes before replicating them.");
  say("   The checkers must catch it, and each failure prints the command that replays it.\n");
  const bad = await simCommand({ protocol: "async-primary", seeds: 20, seed: 1, faults: [...FAULT_CLASSES], json: false, workers, verbose: false, detailedFailures: 1 });
  const ok = good === 0 && bad !== 0;
  say(ok ? "\nBoth controls behaved: the simulator passes a correct system and catches a broken one." : "\nUNEXPECTED: a control did not behave; the simulator or a checker is wrong.");
  say("Next: npx synod sim --help");
  return ok ? 0 : 1;
}
