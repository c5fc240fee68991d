/**
 * The one place in the runtime that knows which consensus protocol a node runs. Everything
 * else drives an `Engine<unknown, unknown>` through the engine contract and treats messages
 * and hard state as opaque values.
 */
import { Packr } from "msgpackr";
import { InvalidInputError } from "../../core/common/errors.js";
import type { EngineFactory, EngineStatus } from "../../core/engine/contract.js";
import { ballotNode, DEFAULT_PAXOS_CONFIG, PAXOS_NODE_ID_MAX, paxosFactory, roundOf } from "../../core/paxos/index.js";
import { DEFAULT_RAFT_CONFIG, raftFactory } from "../../core/raft/index.js";

export const CONSENSUS_PROTOCOLS = ["raft", "paxos"] as const;
export type ConsensusProtocol = (typeof CONSENSUS_PROTOCOLS)[number];

/** Timing in ticks; the node decides how long a tick is (`tickMs`). */
export interface ConsensusTiming {
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  /** Idle groups go quiet (Raft only; a sharded node, whose liveness wakes them: node-liveness.ts). */
  readonly quiesce?: boolean;
}

export interface Consensus {
  readonly protocol: ConsensusProtocol;
  readonly factory: EngineFactory<unknown, unknown>;
  /** The engine's durable state (term, vote, commit for Raft; promise, commit for Paxos) as bytes for the log store. */
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

const isIndex = (v: unknown): boolean => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;

/** Why nodes with these ids cannot run `protocol`, or null: Paxos ballots carry the node id in 20 bits. */
export function nodeIdProblem(protocol: ConsensusProtocol, ids: readonly number[]): string | null {
  if (protocol !== "paxos") return null;
  const large = ids.filter((id) => id > PAXOS_NODE_ID_MAX);
  return large.length === 0 ? null : `--consensus paxos takes node ids up to ${PAXOS_NODE_ID_MAX}; ${[...new Set(large)].join(", ")} ${large.length === 1 ? "is" : "are"} too large: choose smaller ids`;
}

/**
 * What an answer that names a `term` adds for the protocol (`GET /v1/status`, a leadership
 * transfer): for Paxos the ballot the term encodes (round * 2^20 + node id), as the round
 * and the node that owns it.
 */
export function termDetails(protocol: ConsensusProtocol, term: number): Record<string, unknown> {
  switch (protocol) {
    case "raft":
      return {};
    case "paxos":
      return { ballot: { round: roundOf(term), node: ballotNode(term) } };
  }
}

/** What `GET /v1/status` adds for the protocol (see termDetails). */
export function statusDetails(protocol: ConsensusProtocol, status: EngineStatus): Record<string, unknown> {
  return termDetails(protocol, status.term);
}

export function consensusFor(protocol: ConsensusProtocol, timing: ConsensusTiming): Consensus {
  switch (protocol) {
    case "raft": {
      // Leases are allowed (each read still chooses: consistency=lease asks for one, the
      // default linearizable read takes a heartbeat round). They rest on the driver counting
      // ticks by a monotonic clock, which it does.
      const factory = raftFactory({ ...DEFAULT_RAFT_CONFIG, electionTicks: timing.electionTicks, heartbeatTicks: timing.heartbeatTicks, checkQuorum: true, leaseReads: true, quiesce: timing.quiesce === true });
      return {
        protocol,
        factory: factory as EngineFactory<unknown, unknown>,
        encodeHardState: (hardState) => hardStateCodec.pack(hardState),
        decodeHardState: (bytes) => {
          const value = hardStateCodec.unpack(bytes) as unknown;
          if (typeof value !== "object" || value === null) throw new InvalidInputError("a Raft hard state must be an object");
          const { term, vote, commit, forgot } = value as Record<string, unknown>;
          if (!isIndex(term) || !isIndex(commit) || !(vote === null || isIndex(vote)) || !(forgot === undefined || isIndex(forgot))) throw new InvalidInputError("a Raft hard state has a bad field");
          // `forgot`: a dropped replica's tombstone (RaftHardState.forgot).
          return forgot === undefined ? { term, vote, commit } : { term, vote, commit, forgot };
        },
        restoredHardState: ({ index, term }) => ({ term, vote: null, commit: index }),
      };
    }
    case "paxos": {
      // Leases as for Raft: each read chooses; they rest on ticks counted by a monotonic clock.
      const factory = paxosFactory({ ...DEFAULT_PAXOS_CONFIG, electionTicks: timing.electionTicks, heartbeatTicks: timing.heartbeatTicks, checkQuorum: true, leaseReads: true });
      return {
        protocol,
        factory: factory as EngineFactory<unknown, unknown>,
        encodeHardState: (hardState) => hardStateCodec.pack(hardState),
        decodeHardState: (bytes) => {
          const value = hardStateCodec.unpack(bytes) as unknown;
          if (typeof value !== "object" || value === null) throw new InvalidInputError("a Paxos hard state must be an object");
          const { promised, commit } = value as Record<string, unknown>;
          if (!isIndex(promised) || !isIndex(commit)) throw new InvalidInputError("a Paxos hard state has a bad field (it may have been written by a Raft node)");
          return { promised, commit };
        },
        // The snapshot's term is the ballot its last slot was chosen at (a Raft term when the
        // backup came from Raft: as a ballot, a low one). Promising it is promising nothing
        // the log does not already imply; the next leader's round is above it.
        restoredHardState: ({ index, term }) => ({ promised: term, commit: index }),
      };
    }
  }
}
