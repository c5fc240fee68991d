// `client.watch(keyOrPrefix)`: a `GET /v1/watch` stream (docs/http-api.md) as an async
// iterator of changes that outlives any one node. It remembers the id of the last message
// it delivered and, when the stream breaks (the node died, was removed, cut a slow reader,
// stopped answering), opens it again on another node with `Last-Event-ID` set to that id,
// so the sequence it yields has every change once, in revision order, whatever happened
// underneath (etcd's clients learnt this the hard way: etcd-io/etcd#4564 and #7795 resumed
// from the wrong revision, python-etcd3#729 could not resume inside a transaction). Only a
// compaction past where it stood ends it (CompactedError): those changes are gone.
import { Client as UndiciClient } from "undici";
import { InvalidInputError } from "../core/common/errors.js";
import { checkWellFormed, errorFor, parseJson } from "./api.js";
import { CompactedError, ConnectionError, HttpApiError } from "./errors.js";
import { SseParser, type SseEvent } from "./sse.js";
import { errorCode } from "./transport.js";

export interface WatchOptions {
  /** Watch every key that starts with the key given ("" for every key). */
  readonly prefix?: boolean;
  /**
   * The first revision to deliver (history from there on, if not compacted); default: the
   * changes after the revision of the node that first serves the watch.
   */
  readonly fromRevision?: number;
  /** Each change carries the key's value before it, when known (absent for a change at the compaction point). */
  readonly prevValue?: boolean;
  /** Start from a node only once it has applied a linearizable read index: "now" then includes every write acknowledged before. */
  readonly linearizable?: boolean;
  /** Ends the watch: the iterator finishes (no error). */
  readonly signal?: AbortSignal;
}

/** One change of a watched key. */
export interface WatchEvent {
  readonly type: "put" | "delete";
  readonly key: string;
  /** The value written; empty for a delete. */
  readonly value: Uint8Array;
  /** The revision of the change (a transaction's changes share one). */
  readonly revision: number;
  /** The key's creation and version after the change; 0 for a delete. */
  readonly createRevision: number;
  readonly version: number;
  /** With `prevValue`: the value before the change, when the key existed and that is still known. */
  readonly prevValue?: Uint8Array;
}

export interface WatchStats {
  /** Streams opened after the first. */
  readonly reconnects: number;
  readonly events: number;
  /** Changes a node sent again that the watch had delivered already, and dropped (a node's bug; 0 expected). */
  readonly duplicatesDropped: number;
}

/** What a watch needs from its client: where to connect, how long to wait, how to pause. */
export interface WatchContext {
  /** An endpoint not in `avoid`, or null if there is none. */
  pick(key: string, avoid: ReadonlySet<string>): { readonly id: string; readonly url: string } | null;
  reportFailure(id: string): void;
  reportSuccess(id: string): void;
  /** The pause before reconnection `attempt` (0-based). */
  backoffMs(attempt: number): number;
  readonly connectTimeoutMs: number;
  /** An Authorization header for the stream (ClientOptions.auth). */
  readonly authorization?: string;
  /** The largest event accepted, in bytes. */
  readonly eventBytesMax: number;
}

/** How long to wait for a stream's headers (a linearizable start waits for a read index). */
const HEADERS_TIMEOUT_MS = 30_000;
/** Before a node says how often it sends progress: what to assume. */
const PROGRESS_MS_DEFAULT = 5_000;
/** A stream silent for this many progress intervals (plus a margin) is taken for dead. */
const IDLE_PROGRESS_INTERVALS = 3;
const IDLE_MARGIN_MS = 2_000;
/** Error codes of a watch that another node cannot do better on: the caller must act. */
const TERMINAL_STATUSES = new Set([400, 404, 405, 410, 413]);

/** Why a stream was given up: it stayed silent past its idle timeout. */
class IdleStreamError extends Error {}

export class Watch implements AsyncIterableIterator<WatchEvent> {
  private readonly generator: AsyncGenerator<WatchEvent, undefined, undefined>;
  private readonly stopper = new AbortController();
  /** The id of the last message (or created/progress event) delivered: where a new stream resumes. */
  private lastEventId: string | null = null;
  private revisionValue: number;
  private progressMs = PROGRESS_MS_DEFAULT;
  private counters = { reconnects: 0, events: 0, duplicatesDropped: 0 };
  private readonly onSignal = (): void => this.close();

  /** @throws InvalidInputError for a key or option the node would refuse. */
  constructor(
    readonly key: string,
    private readonly options: WatchOptions,
    private readonly context: WatchContext,
    private readonly onClose: (watch: Watch) => void,
  ) {
    checkWellFormed(key, options.prefix === true ? "the prefix" : "the key");
    if (key === "" && options.prefix !== true) throw new InvalidInputError("a key must not be empty (watch every key with { prefix: true })");
    const from = options.fromRevision;
    if (from !== undefined && (!Number.isSafeInteger(from) || from < 1)) throw new InvalidInputError(`fromRevision must be a positive integer, got ${from}`);
    this.revisionValue = from === undefined ? 0 : from - 1;
    this.generator = this.run();
    if (options.signal?.aborted === true) this.close();
    else options.signal?.addEventListener("abort", this.onSignal, { once: true });
  }

  /**
   * Every change up to this revision was delivered, or did not match (it moves with the
   * changes and with the nodes' progress events). Resuming a watch from `revision + 1` later
   * misses nothing.
   */
  get revision(): number {
    return this.revisionValue;
  }

  get stats(): WatchStats {
    return { ...this.counters };
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<WatchEvent>> {
    return this.generator.next();
  }

  async return(): Promise<IteratorResult<WatchEvent>> {
    this.close();
    return this.generator.return(undefined);
  }

  /** Ends the watch: a pending `next` resolves done, and so does every later one. Idempotent. */
  close(): void {
    if (this.stopper.signal.aborted) return;
    this.stopper.abort();
    this.options.signal?.removeEventListener("abort", this.onSignal);
    this.onClose(this);
  }

  private get stopped(): boolean {
    return this.stopper.signal.aborted;
  }

  /** Streams, one after another, until closed or a terminal error. */
  private async *run(): AsyncGenerator<WatchEvent, undefined, undefined> {
    let attempt = 0;
    const avoid = new Set<string>();
    try {
      for (let streams = 0; !this.stopped; streams++) {
        if (streams > 0) this.counters.reconnects++;
        let endpoint = this.context.pick(this.key, avoid);
        if (endpoint === null) {
          avoid.clear();
          endpoint = this.context.pick(this.key, avoid);
        }
        if (endpoint === null) throw new ConnectionError({ message: `watch ${this.key}: no endpoint to connect to`, endpoint: "", requestSent: false, cause: null });
        try {
          for await (const event of this.stream(endpoint.url)) {
            attempt = 0;
            avoid.clear();
            yield event;
            if (this.stopped) return undefined;
          }
          this.context.reportSuccess(endpoint.id);
        } catch (error) {
          if (this.stopped) return undefined;
          if (isTerminal(error)) throw error;
          this.context.reportFailure(endpoint.id);
          avoid.add(endpoint.id);
        }
        await this.pause(attempt++);
      }
      return undefined;
    } finally {
      this.close();
    }
  }

  /** One stream on `url`: its changes, until it ends (returns) or fails (throws). */
  private async *stream(url: string): AsyncGenerator<WatchEvent, void, undefined> {
    const connection = new UndiciClient(url, { connect: { timeout: this.context.connectTimeoutMs }, headersTimeout: HEADERS_TIMEOUT_MS, bodyTimeout: 0 });
    const controller = new AbortController();
    const stop = (): void => controller.abort();
    this.stopper.signal.addEventListener("abort", stop, { once: true });
    try {
      const response = await connection.request({ method: "GET", path: this.path(), headers: this.headers(), signal: controller.signal });
      if (response.statusCode !== 200) {
        const body = new Uint8Array(await response.body.arrayBuffer());
        throw errorFor({ endpoint: url, status: response.statusCode, headers: response.headers, body });
      }
      const parser = new SseParser(this.context.eventBytesMax);
      const chunks = (response.body as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
      for (;;) {
        const chunk = await this.nextChunk(chunks, controller);
        if (chunk === null) return;
        for (const event of parser.push(chunk)) yield* this.handle(event, url);
      }
    } catch (error) {
      throw this.stopped ? error : streamFailure(error, url);
    } finally {
      this.stopper.signal.removeEventListener("abort", stop);
      controller.abort();
      void connection.destroy().catch(() => undefined);
    }
  }

  /** The next chunk, or null at the end; a stream silent past the idle timeout is aborted. */
  private async nextChunk(chunks: AsyncIterator<Buffer>, controller: AbortController): Promise<Buffer | null> {
    const idleMs = this.progressMs * IDLE_PROGRESS_INTERVALS + IDLE_MARGIN_MS;
    const timer = setTimeout(() => controller.abort(new IdleStreamError(`no event for ${idleMs} ms`)), idleMs);
    try {
      const next = await chunks.next();
      return next.done === true ? null : next.value;
    } finally {
      clearTimeout(timer);
    }
  }

  private *handle(event: SseEvent, url: string): Generator<WatchEvent, void, undefined> {
    const data = parseJson(new TextEncoder().encode(event.data));
    const body = typeof data === "object" && data !== null && !Array.isArray(data) ? (data as Record<string, unknown>) : {};
    switch (event.event) {
      case "created": {
        if (typeof body["progressMs"] === "number" && body["progressMs"] > 0) this.progressMs = body["progressMs"];
        // A watch from "now" that has seen nothing resumes where it first started (etcd-io/etcd#4564).
        if (this.lastEventId === null && event.id !== null) this.lastEventId = event.id;
        if (typeof body["startRevision"] === "number") this.advance(body["startRevision"] - 1);
        return;
      }
      case "progress":
        if (typeof body["revision"] === "number" && event.id !== null) {
          this.advance(body["revision"]);
          this.lastEventId = event.id;
        }
        return;
      case "message":
        yield* this.deliver(body, event.id, url);
        return;
      case "canceled":
        // The range split: every change through the split was sent, and the watch goes on
        // from there in the range that holds the keys now (reconnecting, as after a failure).
        if (body["error"] === "range_split" && typeof body["lastEventId"] === "string" && typeof body["revision"] === "number") {
          this.advance(body["revision"]);
          this.lastEventId = body["lastEventId"];
        }
        throw canceledError(body, url);
      default:
        return;
    }
  }

  /** The changes of one message, unless the watch delivered that revision already. */
  private *deliver(body: Record<string, unknown>, id: string | null, url: string): Generator<WatchEvent, void, undefined> {
    const revision = body["revision"];
    const events = body["events"];
    if (typeof revision !== "number" || !Array.isArray(events) || id === null) throw streamFailure(new Error("a message without a revision, events and an id"), url);
    if (revision <= this.revisionValue) {
      this.counters.duplicatesDropped += events.length;
      return;
    }
    const decoded = events.map((event) => decodeEvent(event, url));
    for (let i = 0; i < decoded.length; i++) {
      this.counters.events++;
      // The last change handed over completes the message: the consumer has it once `yield` returns its value.
      if (i === decoded.length - 1) {
        this.lastEventId = id;
        if (!id.includes(":")) this.advance(revision);
      }
      yield decoded[i] as WatchEvent;
    }
  }

  private advance(revision: number): void {
    if (revision > this.revisionValue) this.revisionValue = revision;
  }

  private path(): string {
    const query = new URLSearchParams();
    query.set(this.options.prefix === true ? "prefix" : "key", this.key);
    if (this.options.fromRevision !== undefined) query.set("fromRevision", String(this.options.fromRevision));
    if (this.options.prevValue === true) query.set("prevValue", "true");
    if (this.options.linearizable === true) query.set("linearizable", "true");
    return `/v1/watch?${query.toString()}`;
  }

  private headers(): Record<string, string> {
    const auth = this.context.authorization === undefined ? {} : { authorization: this.context.authorization };
    return this.lastEventId === null ? { accept: "text/event-stream", ...auth } : { accept: "text/event-stream", "last-event-id": this.lastEventId, ...auth };
  }

  private async pause(attempt: number): Promise<void> {
    const pauseMs = this.context.backoffMs(attempt);
    if (pauseMs <= 0 || this.stopped) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, pauseMs);
      this.stopper.signal.addEventListener("abort", done, { once: true });
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
    });
  }
}

/** Whether a failure ends the watch rather than sending it to another node. */
function isTerminal(error: unknown): boolean {
  if (error instanceof CompactedError) return true;
  return error instanceof HttpApiError && TERMINAL_STATUSES.has(error.status);
}

/** A stream that broke or misbehaved: reconnect elsewhere (unless it is a terminal answer). */
function streamFailure(error: unknown, url: string): unknown {
  if (error instanceof HttpApiError || error instanceof ConnectionError) return error;
  const reason = error instanceof IdleStreamError ? error.message : (errorCode(error) ?? (error instanceof Error ? error.message : String(error)));
  return new ConnectionError({ message: `watch stream on ${url} broke: ${reason}`, endpoint: url, requestSent: true, cause: error });
}

/** A `canceled` event as an error: compacted ends the watch, anything else moves it elsewhere. */
function canceledError(body: Record<string, unknown>, url: string): Error {
  const code = typeof body["error"] === "string" ? body["error"] : "canceled";
  const message = `${code}: ${typeof body["message"] === "string" ? body["message"] : "the node ended the watch"}`;
  if (code === "compacted") return new CompactedError({ message, endpoint: url, compactRevision: typeof body["compactRevision"] === "number" ? body["compactRevision"] : null });
  return new ConnectionError({ message: `watch stream on ${url} canceled: ${message}`, endpoint: url, requestSent: true, cause: null });
}

function decodeEvent(value: unknown, url: string): WatchEvent {
  const event = typeof value === "object" && value !== null ? (value as Record<string, unknown>) : {};
  const { type, key, revision } = event;
  if ((type !== "put" && type !== "delete") || typeof key !== "string" || typeof revision !== "number") throw streamFailure(new Error("a change without a type, key and revision"), url);
  const bytes = (text: unknown, encoding: unknown): Uint8Array => (typeof text !== "string" ? new Uint8Array() : new Uint8Array(Buffer.from(text, encoding === "base64" ? "base64" : "utf8")));
  const number = (field: unknown): number => (typeof field === "number" ? field : 0);
  return {
    type,
    key,
    value: bytes(event["value"], event["encoding"]),
    revision,
    createRevision: number(event["createRevision"]),
    version: number(event["version"]),
    ...(typeof event["prevValue"] === "string" ? { prevValue: bytes(event["prevValue"], event["prevEncoding"]) } : {}),
  };
}
