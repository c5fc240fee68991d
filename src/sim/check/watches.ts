/**
 * The watch checker: every watcher saw exactly the changes the cluster committed for its
 * keys, in revision order, none twice and none missed, across every reconnect (etcd's watch
 * guarantees: ordered, unique, reliable, resumable). The truth is what the nodes applied,
 * each revision as the first node to commit it saw it (the state-machine-safety checker
 * holds every node to the same); a compaction that cut a watcher's resume point starts a new
 * segment, which the node declared, and nothing before it is asked for.
 */
import { utf8Decode } from "../../core/common/utf8.js";
import type { KvChange } from "../../core/kv/store.js";
import { InvariantViolation } from "./violation.js";

/** What a watcher saw from one start on: the changes, in the order they arrived, and the last revision a message covered. */
export interface WatchSegment {
  readonly start: number;
  readonly events: KvChange[];
  lastRevision: number;
}

export class WatchChecker {
  private readonly truth = new Map<number, readonly KvChange[]>();

  /** A node committed `changes` (one transaction's, in (revision, key) order): the first to commit a revision says what it holds. */
  committed(changes: readonly KvChange[]): void {
    const byRevision = new Map<number, KvChange[]>();
    for (const change of changes) {
      const list = byRevision.get(change.revision);
      if (list === undefined) byRevision.set(change.revision, [change]);
      else list.push(change);
    }
    for (const [revision, list] of byRevision) if (!this.truth.has(revision)) this.truth.set(revision, list);
  }

  /**
   * Holds a watcher to the truth: each segment's changes are those committed for its keys
   * from the segment's start through its last revision, and with `caughtUp` (it followed the
   * settled cluster's leader to the end) the last segment reaches the last such change.
   */
  check(who: string, watched: { readonly key: string; readonly prefix: boolean }, segments: readonly WatchSegment[], caughtUp: boolean): void {
    const matches = (key: string): boolean => (watched.prefix ? key.startsWith(watched.key) : key === watched.key);
    for (const segment of segments) {
      const expected: KvChange[] = [];
      for (let revision = segment.start; revision <= segment.lastRevision; revision++) {
        for (const change of this.truth.get(revision) ?? []) if (matches(change.key)) expected.push(change);
      }
      const at = firstDifference(expected, segment.events);
      if (at !== null) {
        const got = segment.events[at];
        const wanted = expected[at];
        throw new InvariantViolation(
          "watch",
          `${who}, watching from revision ${segment.start}: its change #${at + 1} was ${got === undefined ? "missing" : describe(got)}, but the cluster committed ${wanted === undefined ? "nothing more for it" : describe(wanted)} there` +
            `${got !== undefined && segment.events.slice(0, at).some((e) => e.revision === got.revision && e.key === got.key) ? " (it saw that change twice)" : ""}; ` +
            `the changes around it: saw ${around(segment.events, at)}; committed ${around(expected, at)}`,
        );
      }
    }
    const last = segments[segments.length - 1];
    if (!caughtUp || last === undefined) return;
    let lastMatching = 0;
    for (const [revision, changes] of this.truth) if (revision > lastMatching && changes.some((c) => matches(c.key))) lastMatching = revision;
    if (lastMatching > last.lastRevision) throw new InvariantViolation("watch", `${who} followed the leader to the end but saw changes only through revision ${last.lastRevision}; the cluster committed one for its keys at revision ${lastMatching}`);
  }
}

function sameChange(a: KvChange, b: KvChange): boolean {
  if (a.revision !== b.revision || a.key !== b.key) return false;
  if (a.record === null || b.record === null) return a.record === b.record;
  return utf8Decode(a.record.value) === utf8Decode(b.record.value);
}

function firstDifference(expected: readonly KvChange[], got: readonly KvChange[]): number | null {
  const n = Math.max(expected.length, got.length);
  for (let i = 0; i < n; i++) {
    const e = expected[i];
    const g = got[i];
    if (e === undefined || g === undefined || !sameChange(e, g)) return i;
  }
  return null;
}

function describe(change: KvChange): string {
  return change.record === null ? `delete ${JSON.stringify(change.key)} at ${change.revision}` : `put ${JSON.stringify(change.key)} = ${JSON.stringify(utf8Decode(change.record.value))} at ${change.revision}`;
}

function around(changes: readonly KvChange[], at: number): string {
  const shown = changes.slice(Math.max(0, at - 2), at + 3).map(describe);
  return shown.length === 0 ? "(none)" : shown.join(", ");
}
