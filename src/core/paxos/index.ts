import { assert } from "../common/assert.js";
import type { EngineFactory, EngineInvariant } from "../engine/contract.js";
import { DEFAULT_PAXOS_CONFIG, type PaxosConfig } from "./config.js";
import { describePaxosMessage, type PaxosHardState, type PaxosMessage } from "./messages.js";
import { isPaxosMutant, PAXOS_MUTANTS } from "./mutants.js";
import { PaxosEngine } from "./paxos.js";
import { validatePaxosMessage } from "./validate.js";

export { ballotNode, ballotOf, describeBallot, PAXOS_NODE_ID_MAX, roundOf } from "./ballot.js";
export { DEFAULT_PAXOS_CONFIG, type PaxosConfig } from "./config.js";
export type { PaxosHardState, PaxosMessage } from "./messages.js";
export { PAXOS_MUTANTS, type PaxosMutant } from "./mutants.js";
export { PaxosEngine } from "./paxos.js";
export { validatePaxosMessage } from "./validate.js";

/**
 * The safety properties Multi-Paxos claims. Raft's log matching and leader completeness are
 * not among them: an acceptor's log has holes, and a new leader learns the chosen values in
 * its phase 1 rather than holding them when elected.
 */
export const PAXOS_INVARIANTS: readonly EngineInvariant[] = ["election-safety", "state-machine-safety", "one-value-per-slot"];

/** Builds Multi-Paxos engines with the given configuration; the one place a driver learns it runs Paxos. */
export function paxosFactory(config: PaxosConfig = DEFAULT_PAXOS_CONFIG): EngineFactory<PaxosMessage, PaxosHardState> {
  return {
    name: "paxos",
    description: "Multi-Paxos with a stable leader, probes, CheckQuorum, pipelined phase 2, the α configuration window and leases",
    invariants: PAXOS_INVARIANTS,
    logWords: { position: "slot", round: "ballot" },
    compacts: true,
    reconfigures: true,
    mutants: PAXOS_MUTANTS,
    create: (options, mutant) => {
      assert(mutant === undefined || isPaxosMutant(mutant), `unknown Paxos mutant ${mutant}`);
      return new PaxosEngine(options, config, mutant ?? null);
    },
    describeMessage: describePaxosMessage,
    validateMessage: validatePaxosMessage,
    tuned: (prng, hints) => {
      let tuned: PaxosConfig = {
        ...config,
        electionTicks: prng.pick([10, 10, 20]),
        heartbeatTicks: prng.pick([1, 1, 2, 3]),
        probe: hints?.preVote ?? prng.chance(0.8),
        checkQuorum: hints?.checkQuorum ?? prng.chance(0.8),
        leaseReads: false,
        windowSlots: prng.pick([2, 4, 16, 1024]),
        entriesPerMessageMax: hints?.smallMessages === true ? 1 : prng.pick([1, 2, 8, 256]),
        inflightMessagesMax: prng.pick([1, 4, 256]),
        snapshotChunkBytes: hints?.smallSnapshotChunks === true ? 32 : prng.pick([256, 4096, 64 * 1024]),
        snapshotResendTicks: prng.pick([2, 5]),
      };
      if (tuned.checkQuorum && (hints?.leaseReads ?? prng.chance(0.5))) tuned = { ...tuned, leaseReads: true };
      const description =
        `election=${tuned.electionTicks} heartbeat=${tuned.heartbeatTicks} probe=${tuned.probe} checkquorum=${tuned.checkQuorum} lease-reads=${tuned.leaseReads} ` +
        `window=${tuned.windowSlots} entries/msg=${tuned.entriesPerMessageMax} inflight=${tuned.inflightMessagesMax} chunk=${tuned.snapshotChunkBytes}B resend=${tuned.snapshotResendTicks}`;
      return { factory: paxosFactory(tuned), description };
    },
  };
}
