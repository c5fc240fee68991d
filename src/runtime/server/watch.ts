/**
 * `GET /v1/watch`: a node's watch streams (Server-Sent Events), served from its applied
 * state; docs/http-api.md has the wire format.
 *
 * Cost on writes. The store tells the hub what each commit changed (`KvStoreObserver`), which
 * appends the changes to a bounded in-memory tail and schedules one wake-up on the next
 * turn: constant work per change, none per watcher, inside apply. Every watcher is then
 * woken (a promise resolved) and reads what it has not sent yet, from the tail when it is
 * there and from the store's history on disk when it is older, filters it by its key or
 * prefix and writes it. So a thousand watchers cost apply nothing more than one; they cost
 * the node the fan-out, outside apply but on the same thread, and that is what later writes
 * then wait for: about 6 µs of the nodes' CPU per change delivered, so with 1,000 watchers
 * on a prefix a write costs the cluster over ten times its own CPU (docs/benchmarks.md,
 * "Watch fan-out"). Filtering is a scan of the changes per watcher (no index by prefix yet).
 *
 * Order and resumption: core/kv/watch-cursor.ts (the simulator drives the same cursor). A
 * message's parts are cut at about MESSAGE_BYTES_MAX of the changes' keys and values.
 *
 * Bounds. A watcher that is catching up (reading history older than the tail) writes a
 * message and waits for the socket to drain before reading more. A watcher that is up to
 * date writes as changes come; if its client does not read and the bytes queued for it
 * pass `queuedBytesMax`, it is cut with a `canceled` event naming where to resume
 * (`slow_watcher`). Streams at most `watchersMax`; the tail at most `tailBytesMax`.
 */
import type { ServerResponse } from "node:http";
import { isUtf8 } from "node:buffer";
import { assert } from "../../core/common/assert.js";
import { SynodError } from "../../core/common/errors.js";
import { compareUtf8 } from "../../core/common/utf8.js";
import { emptySet, writableSet } from "../../core/common/empty.js";
import { spanHolds, spanHoldsPrefix } from "../../core/multi/ranges.js";
import { CompactedError, type HistoryPosition, type KvChange, type KvRecord, type KvStoreObserver } from "../../core/kv/store.js";
import { formatEventId, WatchCursor, type WatchMessage, type WatchSpec } from "../../core/kv/watch-cursor.js";

export { formatEventId, parseEventId } from "../../core/kv/watch-cursor.js";

/** What a watch reads: the KV store (`KvStore` is one). */
export interface WatchSource {
  readonly currentRevision: number;
  readonly compactRevision: number;
  /** Throws CompactedError when `position.revision` is below the compaction point. */
  changesAfter(position: HistoryPosition, limit: number): KvChange[];
  /** The key's record just before `revision`: null if absent, undefined if compacted. */
  recordBefore(key: string, revision: number): KvRecord | null | undefined;
}

export interface WatchOptions {
  /** An idle stream gets a `progress` event this often. */
  readonly progressIntervalMs: number;
  /** An up-to-date watcher whose client leaves more than this queued is cut (`slow_watcher`). */
  readonly queuedBytesMax: number;
  /** The most streams open at once; more are refused with 503. */
  readonly watchersMax: number;
  /** The in-memory tail of recent changes shared by the watchers, at most this many bytes (roughly). */
  readonly tailBytesMax: number;
}

export const DEFAULT_WATCH_OPTIONS: WatchOptions = Object.freeze({
  progressIntervalMs: 5_000,
  queuedBytesMax: 8 * 1024 * 1024,
  watchersMax: 10_000,
  tailBytesMax: 16 * 1024 * 1024,
});

/** What one watch asks for, parsed and checked by the HTTP layer. */
export interface WatchRequest extends WatchSpec {
  readonly prevValue: boolean;
}

/** A watch's stream ended by the node, with why (the `canceled` event's `error`). */
export class WatchCanceledError extends SynodError {
  constructor(code: string, message: string) {
    super(code, message);
    this.name = "WatchCanceledError";
  }
}

/** Changes read from the history at a time, and the bytes of values at which a read stops early. */
const READ_CHANGES_MAX = 256;
const READ_BYTES_MAX = 1024 * 1024;
/** A message is closed once its JSON passes this, and the rest of its revision goes in the next. */
const MESSAGE_BYTES_MAX = 1024 * 1024;
/** A cut watcher's connection is destroyed if its client has not taken what was queued by then. */
const CUT_GRACE_MS = 30_000;
/** Roughly what a change costs the tail beyond its key and value. */
const CHANGE_OVERHEAD_BYTES = 96;

/** The node's watch streams and the shared tail of recent changes. */
export class WatchHub implements KvStoreObserver {
  /** Open streams: the shared empty set while there are none (a node may hold thousands of ranges nobody watches: core/common/empty.ts). */
  private watchers = emptySet<Watcher>();
  /** Recent changes, in (revision, key) order, from `tail[head]` on: every change at or after `tailStart`. */
  private tail: KvChange[] = [];
  private head = 0;
  private tailStart: number;
  private tailBytes = 0;
  private wakeScheduled = false;
  /** Runs while some stream is open: a range nobody watches has no timer (a node may hold thousands). */
  private progressTimer: NodeJS.Timeout | null = null;
  private closed = false;
  /** Streams cut because their client did not read (`slow_watcher`), since the node started. */
  slowWatchersCut = 0;

  constructor(
    readonly source: WatchSource,
    readonly options: WatchOptions = DEFAULT_WATCH_OPTIONS,
    /** Why this node may not serve watches now (it was removed), or null. Checked on each progress round. */
    private readonly refusal: () => Error | null = () => null,
    /** Where a stream that failed unexpectedly is reported (it is ended with `canceled` `internal`). */
    readonly logError: (error: unknown, what: string) => void = () => undefined,
    /** The keys the range holds now (absent: every key): a watch on others is refused. */
    private readonly span: () => { readonly start: string; readonly end: string | null } | undefined = () => undefined,
  ) {
    this.tailStart = source.currentRevision + 1;
  }

  /** Open streams. */
  get count(): number {
    return this.watchers.size;
  }

  committed(changes: readonly KvChange[]): void {
    for (const change of changes) {
      this.tail.push(change);
      this.tailBytes += changeBytes(change);
    }
    this.trim();
    this.scheduleWake();
  }

  restored(): void {
    this.tail = [];
    this.head = 0;
    this.tailBytes = 0;
    this.tailStart = this.source.currentRevision + 1;
    this.scheduleWake();
  }

  /**
   * The range split (src/core/kv/split.ts) at `revision`: it holds only `span` now. A watch on
   * keys it no longer holds would never hear of them again: it is sent every change through
   * `revision` (the parent's history holds them), then ends with a `canceled` event
   * (`range_split`) whose `lastEventId` is `revision`; watched again from there, it goes to
   * the range that holds the keys now, whose history starts at `revision`.
   */
  spanChanged(span: { readonly start: string; readonly end: string | null }, revision: number): void {
    for (const watcher of this.watchers) if (!watcher.within(span)) watcher.endAt(revision);
  }

  /**
   * Serves one watch on `response` until the client goes or the node cuts it. Throws (before
   * anything is written) CompactedError when the start is below the compaction point, and
   * WatchCanceledError `overloaded` past `watchersMax`.
   */
  serve(watch: WatchRequest, response: ServerResponse): void {
    if (this.closed) throw new WatchCanceledError("no_leader", "the node is stopping");
    if (watch.start.revision < this.source.compactRevision) throw new CompactedError(watch.start.revision, this.source.compactRevision);
    if (this.watchers.size >= this.options.watchersMax) throw new WatchCanceledError("overloaded", `this node serves ${this.options.watchersMax} watches already; watch through another node, or retry later`);
    const watcher = new Watcher(this, watch, response);
    const span = this.span();
    // The range split while the request waited: the keys are another range's now.
    if (span !== undefined && !watcher.within(span)) throw new WatchCanceledError("range_split", "the range split and no longer holds the keys this watch follows: watch again (it goes to the range that holds them)");
    this.watchers = writableSet(this.watchers);
    this.watchers.add(watcher);
    if (this.progressTimer === null) {
      this.progressTimer = setInterval(() => this.progressRound(), Math.max(10, Math.floor(this.options.progressIntervalMs / 2)));
      this.progressTimer.unref();
    }
    // The response's close: the client went, or the stream ended. (A request's own close
    // only says its body was read.)
    response.once("close", () => {
      watcher.close();
      this.watchers.delete(watcher);
      if (this.watchers.size === 0) this.watchers = emptySet();
      this.stopProgressIfUnwatched();
    });
    watcher.start();
  }

  /** Ends every stream (the node is stopping), each with a `canceled` event saying where to resume. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const watcher of this.watchers) watcher.cancel("no_leader", "the node is stopping; resume through another node");
    this.watchers = emptySet();
    this.stopProgressIfUnwatched();
  }

  private stopProgressIfUnwatched(): void {
    if (this.watchers.size > 0 || this.progressTimer === null) return;
    clearInterval(this.progressTimer);
    this.progressTimer = null;
  }

  /**
   * At most about READ_CHANGES_MAX changes after `position` (from the tail when it holds
   * them, else from the history), and whether that reached the end of what is committed.
   */
  read(position: HistoryPosition): { readonly changes: KvChange[]; readonly complete: boolean; readonly fromTail: boolean } {
    if (position.revision < this.source.compactRevision) throw new CompactedError(position.revision, this.source.compactRevision);
    if (position.revision >= this.tailStart) {
      const from = this.firstAfter(position);
      const changes = this.tail.slice(from, from + READ_CHANGES_MAX);
      return { changes, complete: from + changes.length >= this.tail.length, fromTail: true };
    }
    const changes: KvChange[] = [];
    let bytes = 0;
    let at = position;
    while (changes.length < READ_CHANGES_MAX && bytes < READ_BYTES_MAX) {
      const page = this.source.changesAfter(at, 16);
      for (const change of page) {
        changes.push(change);
        bytes += changeBytes(change);
      }
      const last = page[page.length - 1];
      if (last === undefined || page.length < 16) return { changes, complete: true, fromTail: false };
      at = { revision: last.revision, afterKey: last.key };
    }
    return { changes, complete: false, fromTail: false };
  }

  private firstAfter(position: HistoryPosition): number {
    let low = this.head;
    let high = this.tail.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      const change = this.tail[middle] as KvChange;
      const before = change.revision < position.revision || (change.revision === position.revision && position.afterKey !== "" && compareUtf8(change.key, position.afterKey) <= 0);
      if (before) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  /** Drops whole revisions from the front of the tail while it is over its bound. */
  private trim(): void {
    while (this.tailBytes > this.options.tailBytesMax && this.head < this.tail.length) {
      const revision = (this.tail[this.head] as KvChange).revision;
      while (this.head < this.tail.length && (this.tail[this.head] as KvChange).revision === revision) this.tailBytes -= changeBytes(this.tail[this.head++] as KvChange);
      this.tailStart = this.head < this.tail.length ? (this.tail[this.head] as KvChange).revision : this.source.currentRevision + 1;
    }
    if (this.head > 1024 && this.head * 2 > this.tail.length) {
      this.tail = this.tail.slice(this.head);
      this.head = 0;
    }
  }

  private scheduleWake(): void {
    if (this.wakeScheduled || this.watchers.size === 0) return;
    this.wakeScheduled = true;
    setImmediate(() => {
      this.wakeScheduled = false;
      for (const watcher of this.watchers) watcher.wake();
    });
  }

  private progressRound(): void {
    const refused = this.refusal();
    const nowMs = performance.now();
    for (const watcher of this.watchers) {
      if (refused !== null) watcher.cancel(refused instanceof SynodError ? refused.code : "unavailable", refused.message);
      else watcher.progress(nowMs);
    }
  }
}

/** One stream. */
class Watcher {
  private readonly cursor: WatchCursor;
  private lastWriteMs = performance.now();
  private idle = false;
  private closed = false;
  /** Resolves the wait for new changes, and the wait for the socket to drain. */
  private waiting: (() => void) | null = null;
  private draining: (() => void) | null = null;
  /** The range split at this revision: the stream ends once it sent everything through it. */
  private endRevision: number | null = null;

  constructor(
    private readonly hub: WatchHub,
    private readonly watch: WatchRequest,
    private readonly response: ServerResponse,
  ) {
    this.cursor = new WatchCursor(watch);
  }

  /** Whether every key this watch follows is in `span`. */
  within(span: { readonly start: string; readonly end: string | null }): boolean {
    const { key, prefix } = this.watch;
    return prefix ? spanHoldsPrefix(span, key) : spanHolds(span, key);
  }

  start(): void {
    this.response.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      // Proxies (nginx) must pass events on as they come.
      "x-accel-buffering": "no",
    });
    this.response.socket?.setNoDelay(true);
    const { source, options } = this.hub;
    this.write("created", this.cursor.lastEventId, { revision: source.currentRevision, startRevision: this.watch.start.revision, compactRevision: source.compactRevision, progressMs: options.progressIntervalMs });
    void this.run();
  }

  /** Ends the stream once everything through `revision` was sent (its range split then). */
  endAt(revision: number): void {
    this.endRevision = this.endRevision === null ? revision : Math.min(this.endRevision, revision);
    this.wake();
  }

  wake(): void {
    const waiting = this.waiting;
    this.waiting = null;
    waiting?.();
  }

  close(): void {
    this.closed = true;
    this.wake();
    const draining = this.draining;
    this.draining = null;
    draining?.();
  }

  /** A `progress` event if the stream has been idle for the interval. */
  progress(nowMs: number): void {
    if (this.closed || !this.idle || nowMs - this.lastWriteMs < this.hub.options.progressIntervalMs) return;
    this.write("progress", this.cursor.progressId(), { revision: this.cursor.sentThrough });
  }

  /** Ends the stream with a `canceled` event: why, and the id to resume from. */
  cancel(code: string, message: string, fields: Record<string, unknown> = {}, lastEventId: string = this.cursor.lastEventId): void {
    if (this.closed) return;
    this.write("canceled", null, { error: code, message, lastEventId, ...fields });
    this.response.end();
    // A client that does not read what is queued for it holds the connection only so long.
    const timer = setTimeout(() => this.response.destroy(), CUT_GRACE_MS);
    timer.unref();
    this.response.once("finish", () => clearTimeout(timer));
    this.response.once("close", () => clearTimeout(timer));
    this.close();
  }

  private async run(): Promise<void> {
    try {
      while (!this.closed) {
        if (this.handedOver()) return;
        const read = this.hub.read(this.cursor.position);
        if (read.changes.length === 0) {
          this.cursor.caughtUp(this.hub.source.currentRevision);
          if (this.handedOver()) return;
          this.idle = true;
          await new Promise<void>((resolve) => (this.waiting = resolve));
          continue;
        }
        this.idle = false;
        for (const message of this.cursor.advance(read.changes, read.complete, changeBytes, MESSAGE_BYTES_MAX)) this.send(message);
        if (this.closed) return;
        if (read.fromTail && this.response.writableLength > this.hub.options.queuedBytesMax) {
          this.hub.slowWatchersCut++;
          this.cancel("slow_watcher", `the client did not take its events fast enough (over ${this.hub.options.queuedBytesMax} bytes queued); resume from lastEventId`);
          return;
        }
        if (!read.fromTail && this.response.writableNeedDrain) await this.drained();
      }
    } catch (error) {
      if (error instanceof CompactedError) {
        this.cancel("compacted", `the history this watch needs was compacted: ${error.message}`, { compactRevision: error.compactRevision });
        return;
      }
      this.hub.logError(error, "a watch stream failed");
      this.cancel("internal", "internal error; see the node's log");
    }
  }

  /** Whether the stream ended because its range split and it sent everything through the split (see `endAt`). */
  private handedOver(): boolean {
    const end = this.endRevision;
    if (end === null || this.cursor.sentThrough < end) return false;
    this.cancel("range_split", "the range split and no longer holds the keys this watch follows: every change through the split was sent; watch again from lastEventId (it goes to the range that holds them now)", { revision: end }, formatEventId(end, null));
    return true;
  }

  private send(message: WatchMessage): void {
    this.write(null, message.id, { revision: message.revision, events: message.changes.map((change) => this.eventJson(change)) });
  }

  private eventJson(change: KvChange): object {
    const event: Record<string, unknown> = change.record === null ? { type: "delete", key: change.key, revision: change.revision } : { type: "put", key: change.key, ...valueFields(change.record.value, "value", "encoding"), revision: change.revision, createRevision: change.record.createRevision, version: change.record.version };
    if (this.watch.prevValue) {
      const previous = this.hub.source.recordBefore(change.key, change.revision);
      if (previous !== null && previous !== undefined) Object.assign(event, valueFields(previous.value, "prevValue", "prevEncoding"));
    }
    return event;
  }

  private write(event: string | null, id: string | null, data: object): void {
    if (this.response.destroyed || this.response.writableEnded) return;
    let text = "";
    if (event !== null) text += `event: ${event}\n`;
    if (id !== null) text += `id: ${id}\n`;
    text += `data: ${JSON.stringify(data)}\n\n`;
    this.response.write(text);
    this.lastWriteMs = performance.now();
  }

  /** Resolves once the socket drained, or the stream closed: new changes do not end this wait. */
  private drained(): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        this.response.off("drain", done);
        this.draining = null;
        resolve();
      };
      this.response.once("drain", done);
      this.draining = done;
    });
  }
}

/** A value as JSON: UTF-8 text, or base64 with `encodingName: "base64"`. */
function valueFields(value: Uint8Array, valueName: string, encodingName: string): Record<string, string> {
  const bytes = Buffer.from(value.buffer, value.byteOffset, value.length);
  if (isUtf8(bytes)) return { [valueName]: bytes.toString("utf8") };
  return { [valueName]: bytes.toString("base64"), [encodingName]: "base64" };
}

function changeBytes(change: KvChange): number {
  return CHANGE_OVERHEAD_BYTES + change.key.length * 2 + (change.record?.value.length ?? 0);
}

assert(MESSAGE_BYTES_MAX <= DEFAULT_WATCH_OPTIONS.queuedBytesMax, "a message fits the queue of an up-to-date watcher");
