/**
 * The one place in the runtime that knows which consensus protocol a node runs. Everything
 * else drives an `Engine<unknown, unknown>` through the engine contract and treats messages
 * and hard state as opaque values; Multi-Paxos will plug in here beside Raft.
 */
import { Packr } from "msgpackr";
import { InvalidInputError } from "../../core/common/errors.js";
import type { EngineFactory } from "../../core/engine/contract.js";
import { DEFAULT_RAFT_CONFIG, raftFactory } from "../../core/raft/index.js";

export const CONSENSUS_PROTOCOLS = ["raft"] as const;
export type ConsensusProtocol = (typeof CONSENSUS_PROTOCOLS)[number];

/** Timing in ticks; the node decides how long a tick is (`tickMs`). */
export interface ConsensusTiming {
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
}

export interface Consensus {
  readonly protocol: ConsensusProtocol;
  readonly factory: EngineFactory<unknown, unknown>;
  /** The engine's durable state (term, vote, commit for Raft) as bytes for the log store. */
  encodeHardState(hardState: unknown): Uint8Array;
  decodeHardState(bytes: Uint8Array): unknown;
  /**
   * The hard state of a node seeded from a backup whose snapshot is at `index` and `term`
   * (`synod snapshot restore`): in that term, so the node never campaigns or appends below a
   * term its log holds, with no vote, and committed through the snapshot.
   */
  restoredHardState(snapshot: { readonly index: number; readonly term: number }): unknown;
}

const hardStateCodec = new Packr({ useRecords: false, moreTypes: false });

export function consensusFor(protocol: ConsensusProtocol, timing: ConsensusTiming): Consensus {
  switch (protocol) {
    case "raft": {
      // Leases are allowed (each read still chooses: consistency=lease asks for one, the
      // default linearizable read takes a heartbeat round). They rest on the driver counting
      // ticks by a monotonic clock, which it does.
      const factory = raftFactory({ ...DEFAULT_RAFT_CONFIG, electionTicks: timing.electionTicks, heartbeatTicks: timing.heartbeatTicks, checkQuorum: true, leaseReads: true });
      return {
        protocol,
        factory: factory as EngineFactory<unknown, unknown>,
        encodeHardState: (hardState) => hardStateCodec.pack(hardState),
        decodeHardState: (bytes) => {
          const value = hardStateCodec.unpack(bytes) as unknown;
          if (typeof value !== "object" || value === null) throw new InvalidInputError("a Raft hard state must be an object");
          const { term, vote, commit } = value as Record<string, unknown>;
          const index = (v: unknown): boolean => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
          if (!index(term) || !index(commit) || !(vote === null || index(vote))) throw new InvalidInputError("a Raft hard state has a bad field");
          return { term, vote, commit };
        },
        restoredHardState: ({ index, term }) => ({ term, vote: null, commit: index }),
      };
    }
  }
}
