/**
 * Deliberately broken splits, so the simulator (`synod sim --splits N`, sim/split-run.ts)
 * can prove its checkers catch the bugs range-sharded stores have shipped. Production never
 * builds one.
 *
 * - `split-serves-moved-keys` breaks the store's backend (backend.ts `setSpan`): a split
 *   does not narrow the parent's span, so the parent keeps the keys its split moved to the
 *   child and goes on taking writes and answering reads of them. Clients that route a moved
 *   key to the parent and those that route it to the child see two registers: stale reads,
 *   and writes the range that owns the key at the end never saw.
 * - `split-read-epoch-unchecked` breaks where a read checks its range: on arrival only, not
 *   again once its read index applied. A read that reaches a replica which has not applied
 *   the split yet passes the check, waits for its read index, which covers the split, and is
 *   answered from a range that no longer holds the key: "not found" for a key that exists.
 *   TiKV shipped this (tikv/tikv#14699, "Response read without checking epoch": raftstore v2
 *   answered follower reads without checking the region's epoch, so a read concurrent with a
 *   split read out of range; and tikv/tikv#1682, a read index proposed before a split and
 *   applied long after it). Production checks after the wait (runtime/server/node-ranges.ts
 *   `rangeService.get`, and `readRangeCheck` below).
 * - `split-drops-held-child` breaks the node's compaction hold (core/multi/held-births.ts):
 *   a parent compacts its log past a split while its child still starts from a first state
 *   that only names the records the split left in the node's store. A node whose store is
 *   then lost (a crash in the simulator; a machine crash for LMDB) rebuilds the parent from
 *   a snapshot without the child's keys and cannot make the child again: it waits for a
 *   leader's snapshot, and once every node did so the range is gone (the run's liveness
 *   check catches it). A split that hands records over without a copy must keep
 *   the parent able to make them again until the child holds them in a snapshot of its own.
 * - `split-trusts-parent-log` breaks the node's recovery of a held child (held-births.ts):
 *   this project shipped it. A restarted node counts on the parent's log alone to make the
 *   child's records again: the parent restarts from the commit index its hard state saved,
 *   which a crash can leave older than a split it applied (a commit index is saved without
 *   a sync of its own), and a child whose parent here catches up from its leader's snapshot
 *   instead is hosted from its held first state anyway. The child's records were lost with
 *   the store; the node cannot host it. Production raises the parent's commit index to the
 *   split a held child names (`withWitnessedCommit`), and otherwise hosts the child with no
 *   state until its leader's snapshot (`unmadeChildState`).
 * - `split-keeps-unmade-child` breaks the second of those rules alone.
 * - `split-moved-replica-replays-log` breaks how a node hosts a range it was added to (or
 *   missed the split of) with no state: it takes the log from its leader's first entry
 *   instead of waiting for a snapshot (EngineOptions.awaitSnapshot). This project shipped
 *   it (before 17f1b79): a range moved to a node after it split applied its pre-split
 *   entries over its narrower span, refused the writes to keys that had moved and the
 *   split itself, and went on with revisions and an epoch of its own. The run's check that
 *   replicas at one applied index hold one state catches it (split-checks.ts).
 * - `split-readded-replica-votes` breaks what a replica dropped from a range and hosted
 *   again may do before it holds what it had applied: its tombstone keeps the term and vote
 *   but not that index, so it grants votes at once (it must not: RaftHardState.forgot).
 *   This project shipped it: a replica whose stale
 *   configuration still counted the new one a voter won an election with its vote alone,
 *   without entries the new one had acknowledged before it was dropped (leader
 *   completeness).
 * - `split-moved-replica-awaits-applied` breaks which snapshot such a replica waits for: one
 *   at or after the index its range's description was given at, not the index the range's
 *   span was set at (placement-directory.ts, `snapshotFloor`). This project shipped it
 *   (17f1b79 until the span's index was kept): a leader elected with its commit index still
 *   behind that index cannot commit without the new replica where its vote completes the
 *   quorum (four voters, one lost), so it never applies that far, never captures the
 *   snapshot, and the range never serves again. The run's liveness check caught it (seed
 *   382 of the widest run) until removed nodes were told their commit index again when
 *   they campaign; the seeds run since do not reach it (docs/simulator.md).
 */
import { MemoryKvBackend } from "./backend.js";
import { SharedMemoryKvBackend, type MemoryKvGroups } from "./memory-groups.js";
import { compareUtf8 } from "../common/utf8.js";
import type { KeySpan } from "./split.js";
import { KvStore } from "./store.js";

export const SPLIT_MUTANTS = {
  "split-serves-moved-keys": "a split does not narrow the parent's span: the parent keeps the keys it moved to the new range and goes on answering reads and taking writes of them",
  "split-read-epoch-unchecked":
    "a read checks its key against the range's span when it arrives, not again once its read index applied: a split applied meanwhile and the parent answers 'not found' for a key that moved (tikv/tikv#14699: reads answered without checking the region's epoch after a split)",
  "split-drops-held-child":
    "a parent compacts its log past a split while its child still starts from a first state that only names the records the split left in the node's store: a node that loses its store cannot make the child again",
  "split-keeps-unmade-child":
    "a node whose parent range caught up past a split it can no longer make again (its store lost with a crash) hosts the child from its held first state anyway, which names records it does not have, instead of with no state until its leader's snapshot",
  "split-trusts-parent-log":
    "a restarted node counts on the parent's log alone to make a held child's records again: the parent restarts from its saved commit index though the child proves a later split committed, and a child whose parent caught up past its split is hosted from its held first state anyway",
  "split-moved-replica-replays-log":
    "a range hosted with no state on a node it was moved to after a split takes its leader's log from the first entry instead of waiting for a snapshot: the entries before the split, applied over its narrower span, build another state (other revisions, an older epoch)",
  "split-readded-replica-votes":
    "a replica dropped from a range and hosted again with no state grants votes before it has a state: its empty log makes any candidate look up to date, and a candidate with a stale configuration that still counts it a voter wins without entries it had acknowledged",
  "split-moved-replica-awaits-applied":
    "a range hosted with no state waits for a snapshot at or after the index its description was given at, not the one its span was set at: a leader whose commit index is still behind cannot commit without it in a tight quorum, and never captures one",
} as const;

export type SplitMutant = keyof typeof SPLIT_MUTANTS;

export function isSplitMutant(name: string): name is SplitMutant {
  return Object.hasOwn(SPLIT_MUTANTS, name);
}

/**
 * When a read of one key checks that its range holds the key: on arrival, and again once its
 * read index applied (a split may have moved the key while it waited), as production does;
 * the `split-read-epoch-unchecked` mutant checks on arrival only.
 */
export function readRangeCheck(mutant: SplitMutant | null): { readonly onArrival: boolean; readonly afterReadIndex: boolean } {
  return { onArrival: true, afterReadIndex: mutant !== "split-read-epoch-unchecked" };
}

/** The span the `split-serves-moved-keys` backend keeps when asked for `span`: one cut short at its end (a split) stays as it was. */
function wideSpan(current: KeySpan | undefined, span: KeySpan): KeySpan {
  const cutAtEnd = current !== undefined && span.start === current.start && span.end !== null && (current.end === null || compareUtf8(span.end, current.end) < 0);
  return cutAtEnd ? current : span;
}

class WideSpanBackend extends MemoryKvBackend {
  override setSpan(span: KeySpan): void {
    super.setSpan(wideSpan(this.span, span));
  }
}

class WideSpanSharedBackend extends SharedMemoryKvBackend {
  override setSpan(span: KeySpan): void {
    super.setSpan(wideSpan(this.span, span));
  }

  protected override sibling(): SharedMemoryKvBackend {
    return new WideSpanSharedBackend(this.siblingGroups);
  }
}

/**
 * A store for a range of the simulator's split runs: production's, or the
 * `split-serves-moved-keys` mutant's; in `groups` (its splits then copy nothing, as
 * production's: memory-groups.ts), or apart.
 */
export function createRangeStore(mutant: SplitMutant | null, groups: MemoryKvGroups | null = null): KvStore {
  const wide = mutant === "split-serves-moved-keys";
  if (groups !== null) return new KvStore(wide ? new WideSpanSharedBackend(groups) : new SharedMemoryKvBackend(groups));
  return new KvStore(wide ? new WideSpanBackend() : new MemoryKvBackend());
}
