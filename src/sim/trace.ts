import { formatTime } from "./history.js";

/**
 * The last events of a run, kept in a ring so a failure can show how it ended. Entries are
 * stored unformatted and rendered only when asked for, to keep the hot path cheap.
 */
export class Trace {
  private readonly times: number[];
  private readonly actors: string[];
  private readonly texts: (string | (() => string))[];
  private next = 0;
  private count = 0;

  constructor(private readonly capacity: number) {
    // Grown on demand: a large capacity costs nothing until used.
    this.times = [];
    this.actors = [];
    this.texts = [];
  }

  add(time: number, actor: string, text: string | (() => string)): void {
    this.times[this.next] = time;
    this.actors[this.next] = actor;
    this.texts[this.next] = text;
    this.next = (this.next + 1) % this.capacity;
    if (this.count < this.capacity) this.count++;
  }

  /** The last `limit` entries, oldest first, one line each. */
  tail(limit: number): string[] {
    const take = Math.min(limit, this.count);
    const lines: string[] = [];
    for (let k = take; k >= 1; k--) {
      const i = (this.next - k + this.capacity) % this.capacity;
      const text = this.texts[i] as string | (() => string);
      lines.push(`${formatTime(this.times[i] as number).padStart(12)}  ${(this.actors[i] as string).padEnd(9)} ${typeof text === "string" ? text : text()}`);
    }
    return lines;
  }
}
