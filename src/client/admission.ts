// The Client's bound on calls in flight and on calls waiting: `concurrency` slots, a FIFO
// queue of at most `queueMax` waiters, and a refusal (QueueFullError) beyond that, so a
// caller that outruns the cluster finds out at once instead of growing memory without limit.
import { assert } from "../core/common/assert.js";
import { QueueFullError } from "./errors.js";

interface Waiter {
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
  /** Set when it gave up (aborted) or was served; skipped by `release`. */
  done: boolean;
}

/** Compact the queue's array once this many served or abandoned waiters sit at its front. */
const COMPACT_AFTER = 1024;

export class Admission {
  private inFlight = 0;
  private queue: Waiter[] = [];
  private head = 0;
  /** Waiters in the queue that still wait. */
  private waiting = 0;

  /** `concurrency` in [1, 100_000], `queueMax` in [0, 10_000_000]; checked by the Client. */
  constructor(
    readonly concurrency: number,
    readonly queueMax: number,
  ) {
    assert(Number.isSafeInteger(concurrency) && concurrency >= 1, "concurrency is a positive integer");
    assert(Number.isSafeInteger(queueMax) && queueMax >= 0, "queueMax is a non-negative integer");
  }

  /** Calls holding a slot. */
  get active(): number {
    return this.inFlight;
  }

  /** Calls waiting for a slot. */
  get queued(): number {
    return this.waiting;
  }

  /**
   * Takes a slot: at once if one is free (returns null, no promise allocated), else a
   * promise that resolves when a slot is handed over, or rejects with `signal.reason` when
   * `signal` aborts first. @throws QueueFullError when `queueMax` calls already wait.
   */
  acquire(signal: AbortSignal): Promise<void> | null {
    if (this.inFlight < this.concurrency && this.waiting === 0) {
      this.inFlight += 1;
      return null;
    }
    if (this.waiting >= this.queueMax) throw new QueueFullError(this.queueMax);
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        if (waiter.done) return;
        waiter.done = true;
        this.waiting -= 1;
        reject(signal.reason);
      };
      const waiter: Waiter = {
        resolve: () => {
          signal.removeEventListener("abort", onAbort);
          resolve();
        },
        reject: (error) => {
          signal.removeEventListener("abort", onAbort);
          reject(error);
        },
        done: false,
      };
      signal.addEventListener("abort", onAbort, { once: true });
      this.dropAbandoned();
      this.queue.push(waiter);
      this.waiting += 1;
    });
  }

  /** Gives a slot back: to the first waiter still waiting, else to the pool. */
  release(): void {
    assert(this.inFlight > 0, "release without acquire");
    const next = this.nextWaiter();
    if (next === null) {
      this.inFlight -= 1;
      return;
    }
    next.resolve();
  }

  /** Rejects every waiter with `error` (the client is closing). */
  rejectAll(error: unknown): void {
    for (let next = this.nextWaiter(); next !== null; next = this.nextWaiter()) next.reject(error);
  }

  private nextWaiter(): Waiter | null {
    while (this.head < this.queue.length) {
      const waiter = this.queue[this.head] as Waiter;
      this.head += 1;
      if (waiter.done) continue;
      waiter.done = true;
      this.waiting -= 1;
      this.compact();
      return waiter;
    }
    this.compact();
    return null;
  }

  /** Abandoned waiters stay in the array until the head passes them; bound the array when many give up while none is served. */
  private dropAbandoned(): void {
    if (this.queue.length - this.head < 2 * Math.max(this.queueMax, COMPACT_AFTER)) return;
    this.queue = this.queue.slice(this.head).filter((waiter) => !waiter.done);
    this.head = 0;
  }

  private compact(): void {
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else if (this.head >= COMPACT_AFTER && this.head * 2 >= this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }
}
