/**
 * Where a watch stream stands in the store's history, and how the changes it reads become
 * the messages it sends: the part of `GET /v1/watch` that decides what a client sees, kept
 * pure so that the simulator drives the same code the node's HTTP streams do
 * (runtime/server/watch.ts writes the messages; sim/watch-workload.ts delivers them).
 *
 * One message carries the matching changes of one revision (a transaction's changes arrive
 * together), and its id is the revision: a client that reconnects with `Last-Event-ID: R`
 * resumes at revision R + 1, missing and repeating nothing. A revision too large for one
 * message is sent in parts; a part that does not finish its revision has the id `R:n`, "n
 * matching changes of revision R sent", and resuming from it skips those n.
 */
import type { HistoryPosition, KvChange } from "./store.js";

/** What one watch follows, and where it starts: revision `revision`, after its first `skip` matching changes. */
export interface WatchSpec {
  /** The key watched, or with `prefix` the prefix ("" for every key). */
  readonly key: string;
  readonly prefix: boolean;
  readonly start: WatchStart;
}

export interface WatchStart {
  readonly revision: number;
  readonly skip: number;
}

/** Matching changes of one revision (all of them, or with an `R:n` id the first part), and the message's id. */
export interface WatchMessage {
  readonly id: string;
  readonly revision: number;
  readonly changes: readonly KvChange[];
}

/** A place in the stream as an SSE id: `R` (revision R sent whole) or `R:n` (its first n matching changes sent). */
export function formatEventId(revision: number, count: number | null): string {
  return count === null ? String(revision) : `${revision}:${count}`;
}

/** Parses an SSE id back into the place to resume from; null if it is not one. */
export function parseEventId(id: string): WatchStart | null {
  const match = /^(\d{1,16})(?::(\d{1,16}))?$/.exec(id.trim());
  if (match === null) return null;
  const revision = Number(match[1]);
  if (!Number.isSafeInteger(revision)) return null;
  if (match[2] === undefined) return { revision: revision + 1, skip: 0 };
  const skip = Number(match[2]);
  if (!Number.isSafeInteger(skip) || skip < 1) return null;
  return { revision, skip };
}

export class WatchCursor {
  /** The last change read: the next read is of the changes after it. */
  position: HistoryPosition;
  /** The revision being sent, and how many of its matching changes were sent (or skipped on resume). */
  private groupRevision: number;
  private groupCount = 0;
  /** Everything up to this revision was sent (or did not match): what a progress event says. */
  private sentThroughRevision: number;
  /** The id of the last message sent (or, before any, of the place the stream started). */
  private lastId: string;

  constructor(readonly spec: WatchSpec) {
    const { revision, skip } = spec.start;
    this.position = { revision, afterKey: "" };
    this.groupRevision = revision;
    this.sentThroughRevision = revision - 1;
    this.lastId = skip === 0 ? formatEventId(revision - 1, null) : formatEventId(revision, skip);
  }

  get lastEventId(): string {
    return this.lastId;
  }

  get sentThrough(): number {
    return this.sentThroughRevision;
  }

  matches(key: string): boolean {
    return this.spec.prefix ? key.startsWith(this.spec.key) : key === this.spec.key;
  }

  /**
   * Moves past `changes`, the next ones in (revision, key) order after `position`, and
   * returns the messages to send for them: the matching changes, a message per revision, or
   * per part of one once a part's `sizeOf` passes `partSizeMax`. `complete`: they reach the
   * end of what is committed, so the last revision is whole.
   */
  advance(changes: readonly KvChange[], complete: boolean, sizeOf: (change: KvChange) => number, partSizeMax: number): WatchMessage[] {
    const messages: WatchMessage[] = [];
    let part: KvChange[] = [];
    let size = 0;
    const flush = (whole: boolean): void => {
      if (part.length === 0) return;
      this.lastId = formatEventId(this.groupRevision, whole ? null : this.groupCount);
      messages.push({ id: this.lastId, revision: this.groupRevision, changes: part });
      part = [];
      size = 0;
    };
    for (const change of changes) {
      if (change.revision !== this.groupRevision) {
        flush(true);
        this.groupRevision = change.revision;
        this.groupCount = 0;
      }
      if (!this.matches(change.key)) continue;
      this.groupCount++;
      const { start } = this.spec;
      if (start.skip > 0 && change.revision === start.revision && this.groupCount <= start.skip) continue;
      part.push(change);
      size += sizeOf(change);
      if (size >= partSizeMax) flush(false);
    }
    flush(complete);
    const last = changes[changes.length - 1];
    if (last !== undefined) {
      this.position = { revision: last.revision, afterKey: last.key };
      if (complete) this.sentThroughRevision = Math.max(this.sentThroughRevision, last.revision);
    }
    return messages;
  }

  /** Nothing after `position` is committed yet, and the store is at `currentRevision`: all of it was sent. */
  caughtUp(currentRevision: number): void {
    this.sentThroughRevision = Math.max(this.sentThroughRevision, currentRevision);
  }

  /** The id of a progress event: everything through `sentThrough` was sent. */
  progressId(): string {
    this.lastId = formatEventId(this.sentThroughRevision, null);
    return this.lastId;
  }
}
