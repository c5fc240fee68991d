import { assert } from "../core/common/assert.js";

/**
 * Virtual time and the event queue. Time is an integer count of microseconds; events at the
 * same time run in the order they were scheduled, so a run is a pure function of its seed.
 */
export class Scheduler {
  private heapTimes: number[] = [];
  private heapSeqs: number[] = [];
  private heapActions: (() => void)[] = [];
  private sequence = 0;
  private current = 0;
  private executed = 0;

  get now(): number {
    return this.current;
  }

  get eventsRun(): number {
    return this.executed;
  }

  get pending(): number {
    return this.heapTimes.length;
  }

  /** Runs `action` after `delayMicros` (rounded to an integer, at least 0). */
  after(delayMicros: number, action: () => void): void {
    this.at(this.current + Math.max(0, Math.round(delayMicros)), action);
  }

  at(time: number, action: () => void): void {
    assert(Number.isSafeInteger(time) && time >= this.current, `cannot schedule at ${time}, now is ${this.current}`);
    this.push(time, this.sequence++, action);
  }

  /** Runs events until the queue is empty or the next event is after `untilMicros`. */
  runUntil(untilMicros: number, shouldStop: () => boolean = () => false): void {
    while (this.heapTimes.length > 0 && (this.heapTimes[0] as number) <= untilMicros) {
      const action = this.pop();
      action();
      this.executed++;
      if (shouldStop()) return;
    }
    if (untilMicros > this.current) this.current = untilMicros;
  }

  private push(time: number, seq: number, action: () => void): void {
    const times = this.heapTimes;
    const seqs = this.heapSeqs;
    const actions = this.heapActions;
    let i = times.length;
    times.push(time);
    seqs.push(seq);
    actions.push(action);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(time, seq, times[parent] as number, seqs[parent] as number)) break;
      this.moveSlot(parent, i);
      i = parent;
    }
    times[i] = time;
    seqs[i] = seq;
    actions[i] = action;
  }

  /** Copies heap slot `from` into slot `to` (sifting moves slots, then fills the hole). */
  private moveSlot(from: number, to: number): void {
    this.heapTimes[to] = this.heapTimes[from] as number;
    this.heapSeqs[to] = this.heapSeqs[from] as number;
    this.heapActions[to] = this.heapActions[from] as () => void;
  }

  private pop(): () => void {
    const times = this.heapTimes;
    const seqs = this.heapSeqs;
    const actions = this.heapActions;
    const top = actions[0] as () => void;
    this.current = times[0] as number;
    const lastTime = times.pop() as number;
    const lastSeq = seqs.pop() as number;
    const lastAction = actions.pop() as () => void;
    const size = times.length;
    if (size === 0) return top;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= size) break;
      const right = left + 1;
      const child = right < size && before(times[right] as number, seqs[right] as number, times[left] as number, seqs[left] as number) ? right : left;
      if (!before(times[child] as number, seqs[child] as number, lastTime, lastSeq)) break;
      this.moveSlot(child, i);
      i = child;
    }
    times[i] = lastTime;
    seqs[i] = lastSeq;
    actions[i] = lastAction;
    return top;
  }
}

function before(timeA: number, seqA: number, timeB: number, seqB: number): boolean {
  return timeA < timeB || (timeA === timeB && seqA < seqB);
}
