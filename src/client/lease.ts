/**
 * A lease held by this process (`Client.lease`): renewed in the background at a third of
 * its time to live, through failures and failovers (each keep-alive is a write the client
 * retries on any node until shortly before the lease would lapse), and said lost when it
 * is gone or may be: the cluster answered that it no longer exists, or no keep-alive was
 * acknowledged within its time to live. A holder must then stop acting under it.
 */
import { performance } from "node:perf_hooks";
import { LeaseLostError, LeaseNotFoundError } from "./errors.js";

/** What a lease needs of the client. */
export interface LeaseCalls {
  /** One keep-alive, given up after `timeoutMs`. */
  keepAlive(id: number, timeoutMs: number, signal: AbortSignal): Promise<unknown>;
  revoke(id: number): Promise<{ deleted: number; revision: number }>;
}

/** Retry a failed keep-alive after this long at most (less for a short time to live). */
const RETRY_PAUSE_MS_MAX = 500;
/** A keep-alive gives up after at least this long, even if the lease lapses sooner. */
const KEEPALIVE_TIMEOUT_MS_MIN = 100;

export class Lease {
  /** Resolves (never rejects) once the lease is lost, or may be; not after `revoke()` or `release()`. */
  readonly lost: Promise<LeaseLostError>;
  private resolveLost!: (error: LeaseLostError) => void;
  /** When (performance.now) the last acknowledged keep-alive (or the grant) was sent. */
  private renewedAtMs: number;
  private timer: NodeJS.Timeout | null = null;
  private readonly abort = new AbortController();
  private ended = false;

  constructor(
    readonly id: number,
    readonly ttlSeconds: number,
    /** When the grant was sent (performance.now): the lease lives its time to live from then at least. */
    grantSentAtMs: number,
    private readonly calls: LeaseCalls,
    private readonly onEnd: (lease: Lease) => void,
  ) {
    this.renewedAtMs = grantSentAtMs;
    this.lost = new Promise((resolve) => (this.resolveLost = resolve));
    this.schedule(this.intervalMs);
  }

  /** Whether it is held: renewed in time and neither lost, revoked nor released. */
  get alive(): boolean {
    return !this.ended && performance.now() < this.deadlineMs;
  }

  /** Calls `listener` once when the lease is lost (soon, if it already was). */
  onLost(listener: (error: LeaseLostError) => void): void {
    void this.lost.then(listener);
  }

  /** Stops the keep-alives and revokes the lease, deleting its keys now. */
  async revoke(): Promise<{ deleted: number; revision: number }> {
    this.end();
    return this.calls.revoke(this.id);
  }

  /** Stops the keep-alives without revoking: the lease expires by itself within its time to live. */
  release(): void {
    this.end();
  }

  /** Ends the lease as lost for `reason` (the client closing, or the keep-alives failing). */
  fail(reason: LeaseLostError["reason"], message: string, cause?: unknown): void {
    if (this.ended) return;
    this.end();
    this.resolveLost(new LeaseLostError({ id: this.id, reason, message, ...(cause === undefined ? {} : { cause }) }));
  }

  private get intervalMs(): number {
    return (this.ttlSeconds * 1000) / 3;
  }

  private get deadlineMs(): number {
    return this.renewedAtMs + this.ttlSeconds * 1000;
  }

  private end(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.abort.abort();
    this.onEnd(this);
  }

  private schedule(delayMs: number): void {
    if (this.ended) return;
    this.timer = setTimeout(() => void this.renew(), Math.max(0, delayMs));
  }

  /** One keep-alive; on failure, another soon, until the lease would have lapsed. */
  private async renew(): Promise<void> {
    this.timer = null;
    const sentAtMs = performance.now();
    const leftMs = this.deadlineMs - sentAtMs;
    if (leftMs <= 0) return this.fail("unrenewed", `lease ${this.id}: no keep-alive was acknowledged within its time to live of ${this.ttlSeconds} s; it may have expired`);
    try {
      await this.calls.keepAlive(this.id, Math.max(KEEPALIVE_TIMEOUT_MS_MIN, Math.floor(leftMs)), this.abort.signal);
      if (this.ended) return;
      this.renewedAtMs = Math.max(this.renewedAtMs, sentAtMs);
      this.schedule(this.intervalMs - (performance.now() - sentAtMs));
    } catch (error) {
      if (this.ended) return;
      if (error instanceof LeaseNotFoundError) return this.fail("expired", `lease ${this.id} expired or was revoked: ${error.message}`, error);
      const pauseMs = Math.min(RETRY_PAUSE_MS_MAX, this.intervalMs / 4);
      if (performance.now() + pauseMs >= this.deadlineMs) return this.fail("unrenewed", `lease ${this.id}: no keep-alive was acknowledged within its time to live of ${this.ttlSeconds} s (last error: ${(error as Error).message}); it may have expired`, error);
      this.schedule(pauseMs);
    }
  }
}
