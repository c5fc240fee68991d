/**
 * The replica's snapshots of its own state (replica.ts, "Snapshots"): every
 * `snapshotEntries` applied entries the state machine is captured, a piece per `soon` so a
 * large state does not stall the node; the storage writes it (`prepareSnapshot`, possibly
 * in the background); then, when no sync runs and nothing holds the log (a follower that
 * still needs its entries, a split's child that needs the parent's: `compactionHeld`), the
 * log is compacted behind it and only then is the engine told to drop its entries. A held
 * first snapshot (ReplicaOptions.heldSnapshot: a range born of a split) is replaced at the
 * first entry applied past it, whatever `snapshotEntries` says, and so is one a follower
 * waits for (a replica hosted with no state: Engine.snapshotWanted) once applied that far;
 * a held one a follower waits for is captured at once, for the engine to send.
 */
import { assert } from "../common/assert.js";
import type { Engine, Membership, Snapshot } from "../engine/contract.js";
import type { SnapshotBuilder } from "./contract.js";
import type { ReplicaOptions } from "./replica.js";

/** Records captured per step of an incremental snapshot: a step costs about a millisecond. */
const SNAPSHOT_RECORDS_PER_STEP = 500;

/** What the snapshots need of the replica that owns them. */
export interface SnapshotsHost<M, H, R> {
  readonly options: ReplicaOptions<M, H, R>;
  readonly engine: Engine<M, H>;
  /** The replica stopped: a capture under way ends. */
  stopped(): boolean;
  /** A sync runs: compaction waits for a moment with none. */
  syncing(): boolean;
  /**
   * Entries applied early (durable before their Ready's own writes were) that the engine has
   * not been told of yet (Engine.advance): compaction waits until it has, as the engine
   * compacts only what it knows applied. A capture the timer starts can be that far ahead.
   */
  advancing(): boolean;
  /** Whether compacting through the snapshot's index must wait (Replica's `compactionHeld`). */
  compactionHeld(snapshot: Snapshot): boolean;
  /** A failure the replica cannot continue after. */
  fail(error: unknown): void;
}

interface Capture {
  readonly builder: SnapshotBuilder;
  readonly term: number;
  readonly membership: Membership | undefined;
  readonly startedMs: number;
}

export class ReplicaSnapshots<M, H, R> {
  private inProgress: Capture | null = null;
  /** A snapshot whose file is written, waiting for the storage to be free of syncs. */
  private toSave: { readonly snapshot: Snapshot; readonly startedMs: number } | null = null;
  /** The log still starts with a held snapshot (ReplicaOptions.heldSnapshot). */
  private heldNow: boolean;

  constructor(private readonly host: SnapshotsHost<M, H, R>) {
    this.heldNow = host.options.heldSnapshot !== undefined;
  }

  /** A snapshot is being captured or waits to be saved. */
  get busy(): boolean {
    return this.inProgress !== null || this.toSave !== null;
  }

  /** The log still starts with a held snapshot. */
  get held(): boolean {
    return this.heldNow;
  }

  /** Starts a capture if enough entries applied since the last snapshot (or one past a held snapshot). */
  maybeTake(): void {
    const { options, engine } = this.host;
    const every = options.snapshotEntries;
    if (this.busy || engine.compact === undefined) return;
    const applied = options.stateMachine.appliedIndex;
    const since = applied - engine.status().snapshotIndex;
    // A held snapshot is replaced at the first entry past it: until then no peer can be sent one.
    // A follower waiting for a snapshot this one has not taken yet (Engine.snapshotWanted) gets one now.
    const wanted = engine.snapshotWanted?.() ?? 0;
    const asked = wanted > 0 && applied >= wanted;
    if (!(this.heldNow && since > 0) && !asked && (every === 0 || since < every)) return;
    const term = engine.entryTerm(applied);
    assert(term !== null, `no term for the applied index ${applied}`);
    // The configuration at the snapshot's index goes with it: the log that held it will go.
    const membership = engine.membershipAt?.(applied);
    const builder = options.stateMachine.beginSnapshot();
    assert(builder.index === applied, `a snapshot began at ${builder.index}, not at the applied index ${applied}`);
    const progress = { builder, term, membership, startedMs: options.clock.nowMs() };
    this.inProgress = progress;
    options.clock.soon(() => this.step(progress));
  }

  private step(progress: Capture): void {
    if (this.inProgress !== progress || this.host.stopped()) return;
    const { options } = this.host;
    const { builder } = progress;
    if (!builder.step(SNAPSHOT_RECORDS_PER_STEP)) {
      options.clock.soon(() => this.step(progress));
      return;
    }
    const base = { index: builder.index, term: progress.term, data: builder.data };
    const snapshot: Snapshot = progress.membership === undefined ? base : { ...base, membership: progress.membership };
    options.storage.prepareSnapshot(snapshot, (error) => {
      if (this.inProgress !== progress || this.host.stopped()) return; // aborted meanwhile
      this.inProgress = null;
      if (error !== null && error !== undefined) {
        options.observer?.snapshotFailed?.(error);
        return;
      }
      this.toSave = { snapshot, startedMs: progress.startedMs };
      if (!this.host.syncing()) this.save();
    });
  }

  /** Compacts behind a prepared snapshot, if there is one; only while no sync runs. */
  save(): void {
    const toSave = this.toSave;
    const { options, engine } = this.host;
    if (toSave === null || this.host.syncing() || this.host.advancing()) return;
    this.toSave = null;
    const { snapshot } = toSave;
    const engineIndex = engine.status().snapshotIndex;
    if (this.heldNow && snapshot.index === engineIndex) {
      // A follower waits for the state a held first snapshot only names, and no entry past it
      // can commit without that follower (its range's quorum needs it): the engine sends this
      // full capture of it. The storage keeps the held one, still true, until the first full
      // snapshot past it replaces it as usual.
      engine.offerSnapshot?.(snapshot.index, snapshot.data);
      return;
    }
    if (snapshot.index <= engineIndex) return; // overtaken by a leader's snapshot
    if (this.host.compactionHeld(snapshot)) {
      // A follower waits for this very snapshot while the log must stay (a split here whose
      // child's records are only where it left them): the engine sends it, the log and the
      // storage unchanged. Where that follower's vote completes the quorum, nothing else
      // would ever let the range commit again.
      if (snapshot.index >= this.wantedFrom()) engine.offerSnapshot?.(snapshot.index, snapshot.data);
      this.toSave = toSave; // retried after the next sync or tick
      return;
    }
    const savingMs = options.clock.nowMs();
    try {
      options.storage.compact(snapshot);
    } catch (error) {
      this.host.fail(error);
      return;
    }
    engine.compact?.(snapshot.index, snapshot.data);
    const doneMs = options.clock.nowMs();
    options.observer?.snapshotTaken?.(snapshot, { total: doneMs - toSave.startedMs, saving: doneMs - savingMs });
    this.heldReplaced();
  }

  /** The least index of a snapshot a follower waits for (Engine.snapshotWanted); infinity when none does. */
  private wantedFrom(): number {
    const wanted = this.host.engine.snapshotWanted?.() ?? 0;
    return wanted > 0 ? wanted : Number.POSITIVE_INFINITY;
  }

  /** The log starts with a full snapshot now (one taken, or a leader's installed): a held one it started with is replaced. */
  heldReplaced(): void {
    if (!this.heldNow) return;
    this.heldNow = false;
    this.host.options.heldSnapshot?.replaced();
  }

  /** Drops a capture under way and one waiting to be saved (a leader's snapshot replaces the state, or the replica stops). */
  abort(): void {
    this.inProgress?.builder.abort();
    this.inProgress = null;
    this.toSave = null;
  }
}
