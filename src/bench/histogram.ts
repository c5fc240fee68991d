import { assert } from "../core/common/assert.js";

/** Exact one-microsecond buckets below this value; logarithmic ones from here on. */
const LINEAR_MICROS = 128;
/** Buckets per power of two above `LINEAR_MICROS`: each is 1/64 of its lower bound wide. */
const SUB_BUCKETS = 64;
const SUB_BUCKET_BITS = 6;
const LINEAR_BITS = 7;
/** Sixty seconds: no request of a benchmark should take longer. */
export const HISTOGRAM_VALUE_MICROS_MAX_DEFAULT = 60_000_000;

/**
 * A latency histogram of fixed size (the layout of HdrHistogram with two significant
 * binary digits): one bucket per microsecond up to 127 µs, then 64 buckets per power of
 * two, so a bucket is at most 1/64 of its lower bound wide. Reported values are bucket
 * midpoints, within 1/128 (0.8%) of every value in the bucket. Up to 60 s this is 1,331
 * counters, whatever the number of recorded values, so a benchmark of any length keeps
 * no array of samples. Values above `valueMicrosMax` count in the last bucket; min, max
 * and mean are exact.
 */
export class LatencyHistogram {
  readonly valueMicrosMax: number;
  private readonly counts: Float64Array;
  private total = 0;
  private sumMicros = 0;
  private minMicros = Number.POSITIVE_INFINITY;
  private maxMicros = 0;

  /** `valueMicrosMax`: 128 µs .. 2^30 µs (about 18 minutes); default 60 s. */
  constructor(valueMicrosMax: number = HISTOGRAM_VALUE_MICROS_MAX_DEFAULT) {
    assert(Number.isSafeInteger(valueMicrosMax) && valueMicrosMax >= LINEAR_MICROS && valueMicrosMax <= 2 ** 30, `valueMicrosMax must be an integer from ${LINEAR_MICROS} to 2^30, got ${valueMicrosMax}`);
    this.valueMicrosMax = valueMicrosMax;
    this.counts = new Float64Array(bucketIndex(valueMicrosMax) + 1);
  }

  /** Records one value, in microseconds (a non-negative finite number; fractions are truncated for bucketing). */
  record(valueMicros: number): void {
    assert(Number.isFinite(valueMicros) && valueMicros >= 0, `a latency must be a non-negative finite number, got ${valueMicros}`);
    const index = bucketIndex(Math.min(Math.floor(valueMicros), this.valueMicrosMax));
    this.counts[index] = (this.counts[index] ?? 0) + 1;
    this.total++;
    this.sumMicros += valueMicros;
    if (valueMicros < this.minMicros) this.minMicros = valueMicros;
    if (valueMicros > this.maxMicros) this.maxMicros = valueMicros;
  }

  /** Adds every value `other` recorded; both must have the same `valueMicrosMax`. */
  add(other: LatencyHistogram): void {
    assert(other.valueMicrosMax === this.valueMicrosMax, "histograms of different ranges do not add");
    for (let i = 0; i < this.counts.length; i++) this.counts[i] = (this.counts[i] ?? 0) + (other.counts[i] ?? 0);
    this.total += other.total;
    this.sumMicros += other.sumMicros;
    this.minMicros = Math.min(this.minMicros, other.minMicros);
    this.maxMicros = Math.max(this.maxMicros, other.maxMicros);
  }

  get count(): number {
    return this.total;
  }

  /** The smallest value recorded; 0 when empty. */
  get min(): number {
    return this.total === 0 ? 0 : this.minMicros;
  }

  /** The largest value recorded; 0 when empty. */
  get max(): number {
    return this.maxMicros;
  }

  /** The arithmetic mean; 0 when empty. */
  get mean(): number {
    return this.total === 0 ? 0 : this.sumMicros / this.total;
  }

  /**
   * The value at `percent` (0..100) by nearest rank: the smallest recorded value with at
   * least `percent`% of the values at or below it, within 0.8% (or 1 µs below 128 µs).
   * 0 when empty; `percentile(100)` is the exact maximum.
   */
  percentile(percent: number): number {
    assert(percent >= 0 && percent <= 100, `a percentile is 0..100, got ${percent}`);
    if (this.total === 0) return 0;
    if (percent === 100) return this.maxMicros;
    const rank = Math.max(1, Math.ceil((percent / 100) * this.total));
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i] ?? 0;
      if (seen >= rank) return Math.min(this.maxMicros, Math.max(this.minMicros, bucketMidpoint(i)));
    }
    return this.maxMicros;
  }
}

/** The bucket of an integer value, 0 .. 2^30. */
function bucketIndex(valueMicros: number): number {
  if (valueMicros < LINEAR_MICROS) return valueMicros;
  const exponent = 31 - Math.clz32(valueMicros);
  const shift = exponent - SUB_BUCKET_BITS;
  const subBucket = valueMicros >>> shift;
  return LINEAR_MICROS + (exponent - LINEAR_BITS) * SUB_BUCKETS + (subBucket - SUB_BUCKETS);
}

/** The middle of the integers a bucket holds. */
function bucketMidpoint(index: number): number {
  if (index < LINEAR_MICROS) return index;
  const offset = index - LINEAR_MICROS;
  const shift = Math.floor(offset / SUB_BUCKETS) + LINEAR_BITS - SUB_BUCKET_BITS;
  const lower = (SUB_BUCKETS + (offset % SUB_BUCKETS)) * 2 ** shift;
  const width = 2 ** shift;
  return lower + (width - 1) / 2;
}
