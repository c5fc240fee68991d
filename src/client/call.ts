// One Client call's lifetime: its deadline, the caller's AbortSignal and the client's close,
// folded into one signal that every wait of the call (queue, backoff, attempt) listens to,
// and the typed error the call ends with when that signal fires.
import { AbortedError, ClientClosedError, TimeoutError } from "./errors.js";

export type CallEnd = "timeout" | "aborted" | "closed";

/** Thrown through awaits when the call's signal fires; `CallContext.failure` turns it into the public error. */
export class CallEnded extends Error {
  constructor(readonly end: CallEnd) {
    super(`the call ended: ${end}`);
    this.name = "CallEnded";
  }
}

export class CallContext {
  private readonly controller = new AbortController();
  readonly signal: AbortSignal = this.controller.signal;
  /** When the call must be over, `performance.now()` ms. */
  readonly deadlineMs: number;
  /** Why the signal fired; null while it has not. */
  end: CallEnd | null = null;
  /** The caller's abort reason, for `cause`. */
  private userReason: unknown = undefined;
  /** Whether any attempt of the call was a retry (for statistics). */
  retried = false;
  private readonly timer: NodeJS.Timeout;
  private readonly onUserAbort: (() => void) | null = null;

  /**
   * `timeoutMs` in [1, 2^31); `userSignal` already aborted ends the call at once. Call
   * `dispose` when the call is over (it clears the timer and the listener).
   */
  constructor(
    readonly what: string,
    timeoutMs: number,
    private readonly userSignal: AbortSignal | undefined,
  ) {
    this.deadlineMs = performance.now() + timeoutMs;
    this.timer = setTimeout(() => this.finish("timeout"), timeoutMs);
    if (userSignal !== undefined) {
      if (userSignal.aborted) {
        this.userReason = userSignal.reason;
        this.finish("aborted");
      } else {
        this.onUserAbort = () => {
          this.userReason = userSignal.reason;
          this.finish("aborted");
        };
        userSignal.addEventListener("abort", this.onUserAbort, { once: true });
      }
    }
  }

  /** Ends the call (the first end wins). */
  finish(end: CallEnd): void {
    if (this.end !== null) return;
    this.end = end;
    this.controller.abort(new CallEnded(end));
  }

  remainingMs(): number {
    return this.deadlineMs - performance.now();
  }

  dispose(): void {
    clearTimeout(this.timer);
    if (this.onUserAbort !== null) this.userSignal?.removeEventListener("abort", this.onUserAbort);
  }

  /**
   * The error the call rejects with now that its signal fired. `outcomeUnknown`: a write
   * that may have been applied. `lastError` (an attempt's failure) becomes the `cause` of
   * a timeout, so the caller sees why the attempts did not succeed.
   */
  failure(outcomeUnknown: boolean, lastError: unknown, endpoint: string | null): Error {
    const unknown = outcomeUnknown ? "; the write may or may not have been applied" : "";
    switch (this.end) {
      case "aborted":
        return new AbortedError({ message: `${this.what}: aborted${unknown}`, outcomeUnknown, cause: this.userReason });
      case "closed":
        return new ClientClosedError({ message: `${this.what}: the client was closed${unknown}`, outcomeUnknown });
      default: {
        const last = lastError instanceof Error ? ` (last: ${lastError.message})` : "";
        return new TimeoutError({ message: `${this.what}: no answer within the call's timeoutMs${unknown}${last}`, endpoint, status: null, retryAfterMs: null, outcomeUnknown, ...(lastError === null ? {} : { cause: lastError }) });
      }
    }
  }
}
