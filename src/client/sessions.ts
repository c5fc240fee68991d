// Session lanes: how the Client writes exactly once while writing concurrently. A client
// session (docs/http-api.md, "Client sessions") keeps the answer to its latest write only,
// so it may have one write in flight; the Client keeps a pool of lanes, each a session with
// its next sequence number, and a write takes a free lane for as long as it runs.
import { assert } from "../core/common/assert.js";

/** One session and its position. Owned by one write at a time (between `take` and `give`). */
export interface SessionLane {
  /** The session's id (from `POST /v1/sessions`), or null until one is opened (again, after a 410). */
  session: number | null;
  /** The sequence number of the lane's next write; 1 for a fresh session. */
  nextSequence: number;
}

export class SessionLanes {
  private readonly idle: SessionLane[] = [];
  private lanes = 0;

  /** `lanesMax` is the Client's concurrency: each call in flight holds at most one lane, so a free one always exists or can be made. */
  constructor(readonly lanesMax: number) {
    assert(Number.isSafeInteger(lanesMax) && lanesMax >= 1, "lanesMax is a positive integer");
  }

  /** A free lane: the one used last (its session is warm), or a new one with no session yet. */
  take(): SessionLane {
    const lane = this.idle.pop();
    if (lane !== undefined) return lane;
    assert(this.lanes < this.lanesMax, `more than ${this.lanesMax} session lanes in use (one per call in flight)`);
    this.lanes += 1;
    return { session: null, nextSequence: 1 };
  }

  /** The write is over, whatever its outcome; the caller has moved `nextSequence` on. */
  give(lane: SessionLane): void {
    assert(this.idle.length < this.lanes, "a lane given back twice");
    this.idle.push(lane);
  }

  /** Lanes made so far (sessions in use or idle), at most `lanesMax`. */
  get count(): number {
    return this.lanes;
  }

  get idleCount(): number {
    return this.idle.length;
  }
}
