import { simCommand } from "./sim-command.js";

/**
 * What `npm start` runs until the node runtime lands: two short simulations that show the
 * Raft engine and the test backbone at work. It does not pretend to be a cluster.
 */
export async function demoCommand(workers: number): Promise<number> {
  const say = (text: string): void => void process.stdout.write(`${text}\n`);
  say("synod: the deterministic simulator and its checkers, at work on the Raft engine that");
  say("`synod cluster` runs for real. Two short runs show them.\n");
  say("1. Raft, 20 seeds, each a scenario from the catalogue (synod scenarios): partitions, crashes");
  say("   that lose unsynced writes, pauses, lossy networks, snapshots. Every checker passes.\n");
  const good = await simCommand({ protocol: "raft", seeds: 20, seed: 1, faults: null, scenario: "random", json: false, workers, verbose: false });
  say("\n2. A broken Raft: a follower that keeps conflicting entries instead of truncating them.");
  say("   The checkers must catch it, and each failure prints the command that replays it.\n");
  const bad = await simCommand({
    protocol: "raft",
    mutant: "keep-conflicting-entries",
    seeds: 20,
    seed: 1,
    faults: null,
    scenario: "random",
    json: false,
    workers,
    verbose: false,
    detailedFailures: 1,
  });
  const ok = good === 0 && bad !== 0;
  say(ok ? "\nBoth runs behaved: the simulator passes a correct Raft and catches a broken one." : "\nUNEXPECTED: a run did not behave; the engine, the simulator or a checker is wrong.");
  say("Next: npx synod sim --help, npx synod scenarios, npx synod sim --list-mutants");
  return ok ? 0 : 1;
}
