/**
 * A Raft engine's snapshots (section 7): the latest one it holds (its own, taken by the
 * driver's `compact`, or a leader's it installed), the one installed for the next Ready to
 * hand to the driver, a leader's snapshot being received in chunks, and the snapshot this
 * node waits for before it takes any entry (EngineOptions.awaitSnapshot, raft-rs's
 * request_snapshot). The engine (raft.ts) owns it; the rules a classic mistake breaks
 * (`snapshotAlreadyCommitted`, `logHoldsSnapshot`) stay protected methods of the engine, for
 * its mutants to override, and are reached through the host.
 */
import { assert } from "../common/assert.js";
import type { EngineOptions, Membership, NodeId, Snapshot } from "../engine/contract.js";
import type { ConfigLog } from "./config-log.js";
import type { RaftLog } from "./log.js";
import type { RaftHardState, RaftMessage, SnapshotChunk } from "./messages.js";
import { SnapshotReceiver } from "./snapshot-receiver.js";

/** What the snapshots need of their engine (raft.ts; engine-host.ts lends it). */
export interface SnapshotsHost {
  readonly log: RaftLog;
  readonly configLog: ConfigLog;
  term(): number;
  leading(): boolean;
  send(to: NodeId, message: RaftMessage): void;
  sendAfterPersist(to: NodeId, message: RaftMessage): void;
  /** The configuration the engine acts on may have changed (a snapshot installed). */
  refreshMembership(): void;
  /** The leader has a new snapshot: followers waiting for one it reaches are sent it. */
  snapshotsChanged(): void;
  /** The engine's rules (protected methods a mutant overrides): see raft.ts. */
  snapshotAlreadyCommitted(index: number): boolean;
  logHoldsSnapshot(snapshot: Snapshot): boolean;
}

export class RaftSnapshots {
  /** The latest snapshot: this node's own (compact, offerSnapshot) or one installed from a leader. */
  latest: Snapshot | null;
  /** A snapshot installed from the leader, for the next Ready to hand to the driver. */
  toInstall: Snapshot | null = null;
  /**
   * The least index of a leader's snapshot this node must install before it takes any entry
   * (EngineOptions.awaitSnapshot); 0 once it has one, or when the log builds its state.
   */
  awaiting: number;
  private readonly receiver = new SnapshotReceiver();

  constructor(
    private readonly host: SnapshotsHost,
    options: EngineOptions<RaftHardState>,
    base: Membership,
  ) {
    const snapshot = options.durable.snapshot;
    const awaited = options.awaitSnapshot ?? 0;
    // Only a state machine that holds nothing waits: one that applied entries, or a log or
    // snapshot that reaches far enough, builds on itself. But for a held first snapshot the
    // state machine does not hold (its records lost with the node's store): the log after it
    // is kept, for what it acknowledged, and a full snapshot awaited.
    const unmadeHeld = snapshot !== null && snapshot.held === true;
    this.awaiting = awaited > 0 && options.appliedIndex === 0 && (unmadeHeld || ((snapshot === null || snapshot.index < awaited) && options.durable.entries.length === 0)) ? awaited : 0;
    // A snapshot from before configurations were recorded is sent with the one in force.
    this.latest = snapshot !== null && snapshot.membership === undefined ? { ...snapshot, membership: base } : snapshot;
  }

  /** Tells the leader this node takes no entries until it installs a snapshot at `awaiting` or later. */
  askFor(from: NodeId, index: number): void {
    this.host.sendAfterPersist(from, { type: "append-response", term: this.host.term(), reject: true, index, hintIndex: 0, hintTerm: 0, snapshotFrom: this.awaiting });
  }

  /** A chunk of a leader's snapshot (section 7): kept until the snapshot is whole, then installed. */
  receiveChunk(from: NodeId, message: SnapshotChunk): void {
    const { host } = this;
    if (this.awaiting > message.index) {
      // Older than the state this node must start from (a leader that does not know yet): it asks for a newer one.
      this.receiver.abandon();
      return this.askFor(from, message.index);
    }
    if (this.awaiting === 0 && host.snapshotAlreadyCommitted(message.index)) {
      // Already covered by what this node has committed: say so, as for a stale append.
      this.receiver.abandon();
      host.sendAfterPersist(from, { type: "append-response", term: host.term(), reject: false, index: host.log.commitIndex, hintIndex: 0, hintTerm: 0 });
      return;
    }
    const received = this.receiver.receive(message);
    if (received === null) return;
    if (typeof received === "number") {
      // More is needed, or the chunk was out of order: tell the leader where to resume.
      host.send(from, { type: "snapshot-response", term: host.term(), index: message.index, received });
      return;
    }
    this.install(from, received);
  }

  private install(from: NodeId, snapshot: Snapshot): void {
    const { host } = this;
    if (this.awaiting > 0 && host.logHoldsSnapshot(snapshot)) {
      // A node waiting with a log it kept (an unmade held first state): the state machine
      // takes the snapshot, and the log after it stays, written again after the snapshot
      // (the driver discards its stored log for a snapshot it installs).
      host.log.restoreKeeping(snapshot);
      host.configLog.compact(snapshot.index);
      this.installed(snapshot);
    } else if (host.logHoldsSnapshot(snapshot)) {
      // The log already holds the snapshot's last entry, so it holds everything before it:
      // keep the log (and the entries after it) and just learn that it is committed.
      host.log.commitTo(snapshot.index);
    } else {
      host.log.restore(snapshot);
      host.configLog.restore(snapshot.membership);
      this.installed(snapshot);
    }
    host.refreshMembership();
    host.sendAfterPersist(from, { type: "append-response", term: host.term(), reject: false, index: snapshot.index, hintIndex: 0, hintTerm: 0 });
  }

  private installed(snapshot: Snapshot): void {
    this.latest = snapshot;
    this.toInstall = snapshot;
    this.awaiting = 0;
  }

  /** See RaftEngine.compact (Engine.compact). */
  compact(index: number, data: Uint8Array): Snapshot | null {
    const { log, configLog } = this.host;
    if (index <= log.snapshotIndexValue) return null;
    const term = log.term(index);
    assert(term !== null, `compaction at ${index}, beyond the log's end ${log.lastIndex}`);
    log.compact(index);
    const membership = configLog.compact(index);
    return this.changed({ index, term, data, membership });
  }

  /** See RaftEngine.offerSnapshot (Engine.offerSnapshot). */
  offer(index: number, data: Uint8Array): Snapshot | null {
    const { log, configLog } = this.host;
    const latest = this.latest;
    if (latest !== null && latest.held !== true && latest.index >= index) return null;
    const term = log.term(index);
    assert(term !== null && index <= log.commitIndex, `a snapshot offered at ${index}, outside the committed log (${log.snapshotIndexValue}..${log.commitIndex})`);
    return this.changed({ index, term, data, membership: configLog.membershipAt(index) });
  }

  private changed(snapshot: Snapshot): Snapshot {
    this.latest = snapshot;
    if (this.host.leading()) this.host.snapshotsChanged();
    return snapshot;
  }
}
