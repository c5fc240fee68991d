/**
 * Rate limiting for repetitive log lines: a peer that stays down, a scanner that keeps
 * sending garbage, or a misconfigured node that retries its handshake every two seconds
 * must not flood the log. Each key may log once per interval; what it suppresses in
 * between is counted and reported with its next admitted line.
 */
export class LogLimiter {
  private readonly lastByKey = new Map<string, { atMs: number; suppressed: number }>();

  /**
   * @param intervalMs at least this long between two admitted lines for one key
   * @param keysMax the most keys remembered; past it, memory is cleared (logging a little
   *   more, never growing without bound)
   * @param nowMs a monotonic clock in milliseconds
   */
  constructor(
    private readonly intervalMs: number,
    private readonly keysMax: number,
    private readonly nowMs: () => number = () => performance.now(),
  ) {}

  /** The number of lines suppressed for `key` since its last admitted one if it may log now; null if not. */
  admit(key: string): number | null {
    const now = this.nowMs();
    const last = this.lastByKey.get(key);
    if (last !== undefined && now - last.atMs < this.intervalMs) {
      last.suppressed++;
      return null;
    }
    if (last === undefined && this.lastByKey.size >= this.keysMax) this.lastByKey.clear();
    this.lastByKey.set(key, { atMs: now, suppressed: 0 });
    return last?.suppressed ?? 0;
  }
}
