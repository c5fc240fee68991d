import { assert } from "../common/assert.js";
import { ALL_ENGINE_INVARIANTS, type EngineFactory } from "../engine/contract.js";
import { DEFAULT_RAFT_CONFIG, type RaftConfig } from "./config.js";
import { describeRaftMessage, raftTombstone, type RaftHardState, type RaftMessage } from "./messages.js";
import { createRaftMutant, isRaftMutant, RAFT_MUTANTS } from "./mutants.js";
import { RaftEngine } from "./raft.js";
import { validateRaftMessage } from "./validate.js";

export { DEFAULT_RAFT_CONFIG, type RaftConfig } from "./config.js";
export { raftTombstone, type RaftHardState, type RaftMessage } from "./messages.js";
export { RAFT_MUTANTS, type RaftMutant } from "./mutants.js";
export { RaftEngine } from "./raft.js";
export { validateRaftMessage } from "./validate.js";

/** Builds Raft engines with the given configuration; the one place a driver learns it runs Raft. */
export function raftFactory(config: RaftConfig = DEFAULT_RAFT_CONFIG): EngineFactory<RaftMessage, RaftHardState> {
  return {
    name: "raft",
    description: "Raft with PreVote, CheckQuorum, pipelined replication and ReadIndex",
    invariants: ALL_ENGINE_INVARIANTS,
    compacts: true,
    reconfigures: true,
    quiesces: true,
    mutants: RAFT_MUTANTS,
    create: (options, mutant) => {
      if (mutant === undefined) return new RaftEngine(options, config);
      assert(isRaftMutant(mutant), `unknown Raft mutant ${mutant}`);
      return createRaftMutant(mutant, options, config);
    },
    describeMessage: describeRaftMessage,
    validateMessage: validateRaftMessage,
    tombstone: raftTombstone,
    tuned: (prng, hints) => {
      const electionTicks = prng.pick([10, 10, 20]);
      let tuned: RaftConfig = {
        ...config,
        electionTicks,
        heartbeatTicks: prng.pick([1, 1, 2, 3]),
        preVote: hints?.preVote ?? prng.chance(0.8),
        checkQuorum: hints?.checkQuorum ?? prng.chance(0.8),
        leaseReads: false,
        entriesPerMessageMax: hints?.smallMessages === true ? 1 : prng.pick([1, 2, 8, 256]),
        inflightMessagesMax: prng.pick([1, 4, 256]),
        snapshotChunkBytes: hints?.smallSnapshotChunks === true ? 32 : prng.pick([256, 4096, 64 * 1024]),
        snapshotResendTicks: prng.pick([2, 5]),
        // Asked for, not drawn: a run without it draws what it drew before quiescence existed.
        quiesce: hints?.quiesce ?? config.quiesce,
      };
      if (tuned.checkQuorum && (hints?.leaseReads ?? prng.chance(0.5))) tuned = { ...tuned, leaseReads: true };
      const description =
        `election=${tuned.electionTicks} heartbeat=${tuned.heartbeatTicks} prevote=${tuned.preVote} checkquorum=${tuned.checkQuorum} lease-reads=${tuned.leaseReads} ` +
        `entries/msg=${tuned.entriesPerMessageMax} inflight=${tuned.inflightMessagesMax} chunk=${tuned.snapshotChunkBytes}B resend=${tuned.snapshotResendTicks}${tuned.quiesce ? " quiesce" : ""}`;
      return { factory: raftFactory(tuned), description };
    },
  };
}
