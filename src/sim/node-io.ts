/**
 * A simulated process's clock and disk as its replicas see them (sim/node.ts keeps the
 * process itself): virtual time at the process's clock rate, and timers that die with the
 * incarnation and do not fire while it is paused; the disk as a group's log storage, each
 * write durable after the fsync latency; and, with several groups, the group commit that
 * serves every group asking in one instant with one fsync.
 */
import type { Clock, LogStorage } from "../core/replica/contract.js";
import { GroupCommit } from "../core/multi/group-commit.js";
import type { GroupId } from "../core/multi/group.js";
import { SimLogStorage, SimSyncDevice, type SimDisk } from "./disk.js";

/** The wall clock a simulated node's leader puts in clock entries: an epoch, plus virtual time. */
export const SIM_EPOCH_MS = 1_700_000_000_000;

/** What the run gives the process: virtual time, and the disk's fsync latency. */
export interface ProcessHost {
  now(): number;
  after(delayMicros: number, action: () => void): void;
  /** Runs `completed` once an fsync issued now has taken its latency. */
  afterFsync(completed: () => void): void;
}

/** The process as its timers and writes need it. */
export interface ProcessState {
  alive(incarnation: number): boolean;
  paused(): boolean;
  /** Runs an input in `incarnation` now, or once the process wakes; never once it crashed. */
  input(incarnation: number, action: () => void): void;
}

export class SimProcessIo {
  /** Every incarnation's group commit (several groups only), for its counts. */
  private readonly commits: GroupCommit[] = [];

  constructor(
    private readonly host: ProcessHost,
    private readonly owner: ProcessState,
    private readonly disk: SimDisk<unknown>,
    private readonly clockRate: number,
    private readonly groupCount: number,
  ) {}

  /** The wall clock of this process: the simulation's epoch plus virtual time, in ms. */
  wallClockMs(): number {
    return SIM_EPOCH_MS + Math.floor(this.host.now() / 1000);
  }

  /** Virtual time as this process sees it, and its timers, which die with this incarnation. */
  clock(incarnation: number): Clock {
    const rate = this.clockRate;
    return {
      nowMs: () => this.host.now() / 1000 / rate,
      soon: (action) => this.host.after(0, () => this.owner.input(incarnation, action)),
      every: (intervalMs, action) => {
        const intervalMicros = Math.max(1, Math.round(intervalMs * 1000 * rate));
        let cancelled = false;
        const fire = (): void => {
          if (cancelled || !this.owner.alive(incarnation)) return;
          // A paused process's timers do not fire; its clock runs on, and on waking the
          // replica counts the ticks it missed (see SimNode.resume).
          if (!this.owner.paused()) action();
          this.host.after(intervalMicros, fire);
        };
        this.host.after(intervalMicros, fire);
        return () => {
          cancelled = true;
        };
      },
    };
  }

  /** The simulated disk as the replica's log storage: writes are durable after the fsync latency. */
  storage(incarnation: number): LogStorage<unknown> {
    return new SimLogStorage(
      this.disk,
      (completed) => this.host.afterFsync(() => this.owner.alive(incarnation) && completed()),
      (action) => this.owner.input(incarnation, action),
    );
  }

  /** One group's records on the shared disk; its syncs go through the node's group commit. */
  groupStorage(incarnation: number, group: GroupId): SimLogStorage<unknown> {
    return new SimLogStorage(this.disk, (completed) => this.host.afterFsync(() => this.owner.alive(incarnation) && completed()), (action) => this.owner.input(incarnation, action), group);
  }

  /**
   * With several groups, one fsync serves every group that asks in the same instant (see
   * core/multi/group-commit.ts). One group syncs directly, as before groups existed, so its
   * runs are the same event for event.
   */
  groupCommit(incarnation: number): GroupCommit | null {
    if (this.groupCount === 1) return null;
    const deliver = (action: () => void): void => this.owner.input(incarnation, action);
    const device = new SimSyncDevice(this.disk, (completed) => this.host.afterFsync(() => this.owner.alive(incarnation) && completed()), deliver);
    const commit = new GroupCommit({ device, soon: (action) => this.host.after(0, () => deliver(action)) });
    this.commits.push(commit);
    return commit;
  }

  /** Over every incarnation: the groups' sync requests, and the disk syncs that served them. */
  get groupCommitCounts(): { readonly requests: number; readonly deviceSyncs: number } {
    let requests = 0;
    let deviceSyncs = 0;
    for (const commit of this.commits) {
      requests += commit.requests;
      deviceSyncs += commit.deviceSyncs;
    }
    return { requests, deviceSyncs };
  }
}
