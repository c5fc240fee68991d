// Session lanes: how the Client writes exactly once while writing concurrently. A client
// session (docs/http-api.md, "Client sessions") keeps the answer to its latest write only,
// so it may have one write in flight; the Client keeps a pool of lanes, each a session with
// its next sequence number, and a write takes a free lane for as long as it runs.
import { assert } from "../core/common/assert.js";

/** One session and its position. Owned by one write at a time (between `take` and `give`). */
export interface SessionLane {
  /** The range the session is in (sessions are per range on a sharded cluster; 0 otherwise). */
  readonly range: number;
  /** The session's id (from `POST /v1/sessions`), or null until one is opened (again, after a 410). */
  session: number | null;
  /** The sequence number of the lane's next write; 1 for a fresh session. */
  nextSequence: number;
}

export class SessionLanes {
  /** Free lanes by range. */
  private readonly idle = new Map<number, SessionLane[]>();
  /** Lanes made, by range. */
  private readonly made = new Map<number, number>();
  private lanes = 0;
  private idleLanes = 0;

  /**
   * `lanesMax` is the Client's concurrency: each call in flight holds at most one lane, so a
   * free one always exists or can be made. It bounds each range's lanes.
   */
  constructor(readonly lanesMax: number) {
    assert(Number.isSafeInteger(lanesMax) && lanesMax >= 1, "lanesMax is a positive integer");
  }

  /** A free lane of `range`: the one used last (its session is warm), or a new one with no session yet. */
  take(range = 0): SessionLane {
    const lane = this.idle.get(range)?.pop();
    if (lane !== undefined) {
      this.idleLanes -= 1;
      return lane;
    }
    const made = this.made.get(range) ?? 0;
    assert(made < this.lanesMax, `more than ${this.lanesMax} session lanes of range ${range} in use (one per call in flight)`);
    this.made.set(range, made + 1);
    this.lanes += 1;
    return { range, session: null, nextSequence: 1 };
  }

  /** The write is over, whatever its outcome; the caller has moved `nextSequence` on. */
  give(lane: SessionLane): void {
    const idle = this.idle.get(lane.range) ?? [];
    assert(idle.length < (this.made.get(lane.range) ?? 0), "a lane given back twice");
    idle.push(lane);
    this.idle.set(lane.range, idle);
    this.idleLanes += 1;
  }

  /** Lanes made so far (sessions in use or idle), at most `lanesMax` per range. */
  get count(): number {
    return this.lanes;
  }

  get idleCount(): number {
    return this.idleLanes;
  }
}
