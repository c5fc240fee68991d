/**
 * Splits by load (docs/sharding.md, "Splits"): a range that takes more writes a second than
 * `--split-load` for `hotForMs` is split, at the key that halves its recent writes, so each
 * half takes about half the load (CockroachDB's load-based splitter does the same with
 * sampled requests). The replica's state machine tells `LoadSplitter` the keys of what it
 * applies; it keeps counts per key for the current second and the one before, at most
 * `keysMax` distinct keys a second (beyond that, every other key's writes are counted in
 * the rate only), so its memory is bounded whatever the load. Pure: the caller gives the time.
 */
export interface LoadSplitOptions {
  /** Writes a second above which a range is hot (0: never). */
  readonly writesPerSecond: number;
  /** How long a range stays hot before it is split. */
  readonly hotForMs: number;
  /** Distinct keys counted per second. */
  readonly keysMax?: number;
}

const SECOND_MS = 1000;
const KEYS_MAX_DEFAULT = 1024;

export class LoadSplitter {
  private windowStart = 0;
  private current = new Map<string, number>();
  private currentWrites = 0;
  private previous = new Map<string, number>();
  private previousWrites = 0;
  /** When the range was first seen hot in a row of hot seconds (null: not hot). */
  private hotSince: number | null = null;

  constructor(private readonly options: LoadSplitOptions) {}

  /** Writes applied now, by key (a transaction or a range delete counts once per key it changes). */
  observe(keys: Iterable<string>, nowMs: number): void {
    this.roll(nowMs);
    const keysMax = this.options.keysMax ?? KEYS_MAX_DEFAULT;
    for (const key of keys) {
      this.currentWrites++;
      const counted = this.current.get(key);
      if (counted !== undefined) this.current.set(key, counted + 1);
      else if (this.current.size < keysMax) this.current.set(key, 1);
    }
  }

  /** Writes a second over the last whole second. */
  rate(nowMs: number): number {
    this.roll(nowMs);
    return this.previousWrites;
  }

  /**
   * The key to split at, when the range has been hot for `hotForMs`: the one that divides
   * the last second's writes, in key order, most evenly (it starts the upper half); null
   * when not hot yet, or when no key inside the range divides them (one key takes them all:
   * a split would not spread the load).
   */
  splitKey(nowMs: number, inside: (key: string) => boolean): string | null {
    this.roll(nowMs);
    if (this.options.writesPerSecond <= 0 || this.hotSince === null || nowMs - this.hotSince < this.options.hotForMs) return null;
    const keys = [...this.previous.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const total = keys.reduce((sum, [, count]) => sum + count, 0);
    let best: string | null = null;
    let bestGap = Infinity;
    let below = (keys[0]?.[1] ?? 0) as number;
    for (const [key, count] of keys.slice(1)) {
      const gap = Math.abs(2 * below - total);
      if (gap < bestGap && inside(key)) {
        best = key;
        bestGap = gap;
      }
      below += count;
    }
    return best;
  }

  /** Forgets the load (the range split: each half counts its own from now). */
  reset(nowMs: number): void {
    this.windowStart = nowMs;
    this.current = new Map();
    this.previous = new Map();
    this.currentWrites = this.previousWrites = 0;
    this.hotSince = null;
  }

  private roll(nowMs: number): void {
    if (nowMs - this.windowStart < SECOND_MS) return;
    const skipped = nowMs - this.windowStart >= 2 * SECOND_MS;
    this.previous = skipped ? new Map() : this.current;
    this.previousWrites = skipped ? 0 : this.currentWrites;
    this.current = new Map();
    this.currentWrites = 0;
    this.windowStart = nowMs - ((nowMs - this.windowStart) % SECOND_MS);
    const hot = this.options.writesPerSecond > 0 && this.previousWrites > this.options.writesPerSecond;
    if (!hot) this.hotSince = null;
    else this.hotSince ??= this.windowStart - SECOND_MS;
  }
}
