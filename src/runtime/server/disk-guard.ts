/**
 * Free space on the data directory's filesystem, watched so that a disk filling up stops
 * client writes with a clear answer while there is still room for the node to work, rather
 * than at the write-ahead log's ENOSPC (etcd's NOSPACE alarm plays the same part).
 *
 * The guard reads the filesystem's free space (statfs, the space an unprivileged user may
 * still take) every `CHECK_INTERVAL_MS`. Below the reserve (`--min-free-disk-bytes`), writes
 * that add data (put, compare-and-set, a transaction that puts, a lease grant) are refused
 * with NoSpaceError (HTTP 507 `no_space`); reads are served, and so are the writes that let
 * an operator make room or keep what exists alive: deletes, compaction, lease keep-alives
 * and revokes. When space returns, the next check lets writes through again: no restart.
 * Between two checks each admitted write is counted against the free space as it was read
 * (twice its bytes: once in the log, once in the state), so a burst of writes cannot run far
 * past the reserve before the next check sees it.
 *
 * The guard is per node: a follower whose disk fills keeps accepting its leader's entries
 * until its log fails; then it stops (fail closed, below) like any failed member, and the
 * others go on. `synod_disk_free_bytes` shows it coming.
 *
 * Fail closed. Should the log's write or fdatasync fail anyway (the reserve set to 0,
 * another process filling the disk at once, an I/O error), the node stops: it never
 * acknowledges a write it could not make durable, and never goes on with a log in an
 * unknown state. `storageFailure` gives the message: which file, and what to do. At restart
 * the log is recovered from what was durable (a torn tail is cut: it was never
 * acknowledged).
 */
import { statfs } from "node:fs/promises";
import { Gauge, type Registry } from "prom-client";
import { SynodError } from "../../core/common/errors.js";
import type { KvOperation } from "./driver.js";

/** A write that would add data was refused: the data directory's disk is below its reserve. */
export class NoSpaceError extends SynodError {
  constructor(message: string) {
    super("no_space", message);
    this.name = "NoSpaceError";
  }
}

/** How often free space is read; writes resume at most this long after space returns. */
export const CHECK_INTERVAL_MS = 1000;
/**
 * The default reserve: 64 MiB, the size of one write-ahead log segment (so the next one can
 * still be prepared, and a snapshot of a small state written, once writes stop), but at most
 * 5% of the filesystem, so a small volume is not refused writes while nearly empty.
 */
export const DEFAULT_RESERVE_BYTES = 64 * 1024 * 1024;
const DEFAULT_RESERVE_FRACTION = 0.05;

export interface DiskSpace {
  /** Bytes an unprivileged user may still write. */
  readonly freeBytes: number;
  /** The filesystem's size in bytes. */
  readonly totalBytes: number;
}

export interface DiskGuardOptions {
  /** The data directory. */
  readonly dir: string;
  /** `--min-free-disk-bytes`: the reserve; 0 turns the guard off; null: the default for the filesystem. */
  readonly reserveBytes: number | null;
  readonly log: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void };
  /** Reads the space on `dir`'s filesystem (default: statfs). */
  readonly space?: (dir: string) => Promise<DiskSpace>;
}

async function statfsSpace(dir: string): Promise<DiskSpace> {
  const stats = await statfs(dir);
  return { freeBytes: stats.bavail * stats.bsize, totalBytes: stats.blocks * stats.bsize };
}

/** The reserve `--min-free-disk-bytes` means when not given, for a filesystem of `totalBytes`. */
export function defaultReserveBytes(totalBytes: number): number {
  return Math.min(DEFAULT_RESERVE_BYTES, Math.floor(totalBytes * DEFAULT_RESERVE_FRACTION));
}

export class DiskGuard {
  /** Free bytes as last read, less what writes admitted since may have taken. */
  private freeBytes: number;
  private low = false;
  /** Whether the log last said writes are refused. */
  private announcedLow = false;
  private timer: NodeJS.Timeout | null = null;
  private checking = false;

  private constructor(
    private readonly options: DiskGuardOptions,
    readonly reserveBytes: number,
    space: DiskSpace,
  ) {
    this.freeBytes = space.freeBytes;
    this.update(space.freeBytes);
  }

  /** Reads the space once (a node starts already refusing writes on a full disk), then every CHECK_INTERVAL_MS. */
  static async start(options: DiskGuardOptions): Promise<DiskGuard> {
    const space = await (options.space ?? statfsSpace)(options.dir);
    const guard = new DiskGuard(options, options.reserveBytes ?? defaultReserveBytes(space.totalBytes), space);
    if (guard.reserveBytes > 0) {
      guard.timer = setInterval(() => void guard.check(), CHECK_INTERVAL_MS);
      guard.timer.unref();
    }
    return guard;
  }

  /** Whether writes that add data are refused now. */
  get refusing(): boolean {
    return this.low;
  }

  get lastFreeBytes(): number {
    return this.freeBytes;
  }

  /** NoSpaceError if `operation` adds data while the disk is below its reserve; else null, and its bytes are counted. */
  refuse(operation: KvOperation): NoSpaceError | null {
    if (this.reserveBytes === 0) return null;
    const bytes = addedBytes(operation);
    if (bytes === 0) return null;
    if (this.low) return new NoSpaceError(this.explain());
    this.freeBytes -= 2 * bytes;
    if (this.freeBytes < this.reserveBytes) this.low = true;
    return null;
  }

  /** Registers `synod_disk_free_bytes`, `synod_disk_reserve_bytes` and `synod_disk_no_space`. */
  registerMetrics(registry: Registry): void {
    const free = (): number => Math.max(0, this.freeBytes);
    const refusing = (): boolean => this.low;
    const reserve = this.reserveBytes;
    new Gauge({ name: "synod_disk_free_bytes", help: "Free bytes on the data directory's filesystem, as last read", registers: [registry], collect() { this.set(free()); } });
    new Gauge({ name: "synod_disk_reserve_bytes", help: "Free bytes below which writes are refused (--min-free-disk-bytes; 0: never)", registers: [registry], collect() { this.set(reserve); } });
    new Gauge({ name: "synod_disk_no_space", help: "1 while writes are refused for lack of disk space (HTTP 507 no_space)", registers: [registry], collect() { this.set(refusing() ? 1 : 0); } });
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  private async check(): Promise<void> {
    if (this.checking) return;
    this.checking = true;
    try {
      const space = await (this.options.space ?? statfsSpace)(this.options.dir);
      this.freeBytes = space.freeBytes;
      this.update(space.freeBytes);
    } catch (error) {
      this.options.log.warn({ err: error, dir: this.options.dir }, "cannot read the free space of the data directory's filesystem");
    } finally {
      this.checking = false;
    }
  }

  /** Free space as read: refuse or accept, and say so when that changes (not for a count's guess the next read undoes). */
  private update(freeBytes: number): void {
    const low = this.reserveBytes > 0 && freeBytes < this.reserveBytes;
    this.low = low;
    if (low === this.announcedLow) return;
    this.announcedLow = low;
    if (low) this.options.log.warn({ dir: this.options.dir, freeBytes, reserveBytes: this.reserveBytes }, this.explain());
    else this.options.log.info({ dir: this.options.dir, freeBytes, reserveBytes: this.reserveBytes }, "disk space is back above the reserve: writes are accepted again");
  }

  private explain(): string {
    return (
      `no space: the data directory ${this.options.dir} has ${formatBytes(Math.max(0, this.freeBytes))} free, below the reserve of ${formatBytes(this.reserveBytes)} (--min-free-disk-bytes). ` +
      "Writes that add data are refused; reads, deletes, compaction and lease keep-alives are served. " +
      `Free space on that filesystem or grow it: writes are accepted again within ${CHECK_INTERVAL_MS / 1000} s, without a restart`
    );
  }
}

/** The bytes `operation` adds to the log and the state; 0 for one that adds no data (a delete, a keep-alive). */
export function addedBytes(operation: KvOperation): number {
  switch (operation.op) {
    case "put":
    case "cas-value":
    case "cas-revision":
      return operation.key.length + operation.value.length;
    case "txn": {
      let bytes = 0;
      for (const step of [...operation.success, ...operation.failure]) if (step.op === "put") bytes += step.key.length + step.value.length;
      return bytes;
    }
    case "lease-grant":
      return 64;
    default:
      return 0;
  }
}

function formatBytes(bytes: number): string {
  if (bytes >= 1024 * 1024) return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
  if (bytes >= 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${bytes} bytes`;
}

const NO_SPACE_CODES: ReadonlySet<string> = new Set(["ENOSPC", "EDQUOT"]);
/** System errors of a disk, as a write into the state (LMDB) may throw them outside the log's path. */
const DISK_ERROR_CODES: ReadonlySet<string> = new Set([...NO_SPACE_CODES, "EIO", "EROFS"]);

/** Whether `error` is a disk's failure (no space, an I/O error), not already explained by `storageFailure`. */
export function isStorageFailure(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  return typeof code === "string" && DISK_ERROR_CODES.has(code) && !(error instanceof Error && error.message.startsWith("storage failure"));
}

/**
 * The error a node stops with when its write-ahead log (or state) could not be written:
 * what failed, where, and what to do before restarting.
 */
export function storageFailure(error: unknown, dataDir: string): Error {
  const code = (error as NodeJS.ErrnoException | null)?.code ?? "";
  const what = error instanceof Error ? error.message : String(error);
  const fix = NO_SPACE_CODES.has(code)
    ? `free space on the filesystem holding ${dataDir} (or move the directory to a larger volume), then restart the node`
    : `check the disk holding ${dataDir} (the kernel log, SMART), then restart the node, or replace it (empty its data directory and let it rejoin)`;
  return new Error(
    `storage failure, stopping: ${what}. This node never acknowledges a write it could not make durable, and does not go on with a log in an unknown state: ${fix}. ` +
      "At restart it recovers its log from what was durable; nothing acknowledged is lost",
    { cause: error },
  );
}
