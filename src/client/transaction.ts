/**
 * Interactive transactions: `client.transaction(async (tx) => { ... })`. Optimistic
 * concurrency control with read validation (what etcd's STM does in its serializable mode):
 * the function reads keys one at a time through the client's linearizable get and buffers
 * its writes; when it returns, one `POST /v1/txn` applies the writes only if every key it
 * read is still as it was read (a compare on the key's revision, or on version 0 for a key
 * read as absent). The node checks those compares with every key of the transaction locked
 * (in each range, by two-phase commit across ranges: docs/transactions.md), so a commit
 * takes effect at one moment at which all the reads still held: the transaction is
 * serializable, and strictly so, as that moment lies within the call. When a read no
 * longer holds (or another transaction held a key), the function runs again from scratch,
 * with a fresh `Transaction`, after a jittered pause, up to `retries` times.
 *
 * Reads are not one snapshot: each is the key's latest value when it was read, so the
 * function may see two keys as they never were together (another transaction committed
 * between the reads). Such a run never commits (its first read fails validation), and when
 * its function throws on what it saw, the reads are validated first: changed, the throw
 * was caused by the inconsistent view and the function runs again; unchanged, its error
 * is the caller's. No range or prefix reads: a key that appears in a range after it was
 * read (a phantom) cannot be caught by compares on the keys that were read.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { InvalidInputError } from "../core/common/errors.js";
import { limits } from "../core/common/limits.js";
import { checkWellFormed, type KeyValue, type TxnCompare, type TxnOperation, type TxnRequest, type TxnResponse } from "./api.js";
import { CallContext, CallEnded } from "./call.js";
import { HttpApiError, TimeoutError, TransactionConflictError, TransactionFinishedError } from "./errors.js";
import { integerOption, TIMEOUT_MS_MAX, type CallOptions, type ReadOptions } from "./options.js";

export interface TransactionOptions extends CallOptions {
  /**
   * How many times the function may run again after a conflict, 0..100; default 10. Past
   * that the call rejects with TransactionConflictError. `timeoutMs` (default the client's)
   * bounds the whole call, every run and pause included; `signal` aborts it.
   */
  readonly retries?: number;
}

export interface TransactionResult<T> {
  /** What the function returned on its run that committed. */
  readonly value: T;
  /**
   * The revision of the commit: the store's after it (across ranges, that of the anchor
   * range, the range of the smallest key); for a read-only transaction that validated its
   * reads, the revision they were validated at; null when nothing was sent (no writes and
   * at most one read).
   */
  readonly revision: number | null;
  /** Runs of the function: 1 when nothing made it run again. */
  readonly attempts: number;
}

export const TRANSACTION_RETRIES_DEFAULT = 10;
export const TRANSACTION_RETRIES_MAX = 100;

/** What a transaction runs on: the client's calls, its backoff and its default timeout. */
export interface TransactionHost {
  get(key: string, options: ReadOptions): Promise<KeyValue | null>;
  txn(request: TxnRequest, options: CallOptions): Promise<TxnResponse>;
  /** The pause before rerun `retry` (0-based): the client's full-jitter backoff. */
  backoffMs(retry: number): number;
  /** The client's `timeoutMs`, for a transaction that does not give its own. */
  readonly timeoutMs: number;
}

type BufferedWrite = { readonly op: "put"; readonly value: string | Uint8Array; readonly bytes: Uint8Array } | { readonly op: "delete" };

/**
 * The `tx` a transaction's function is given: reads and buffered writes for one run of the
 * function. Serves that run only: once the function returned or threw, every method throws
 * TransactionFinishedError.
 */
export class Transaction {
  constructor(private readonly run: TransactionRun) {}

  /** Which run of the function this is, from 1. */
  get attempt(): number {
    return this.run.attempt;
  }

  /**
   * The key's record (null: absent). Read linearizably the first time; the same answer
   * after that (repeatable read); a key this transaction wrote reads as written (a put's
   * value with `revision`, `createRevision` and `version` 0, as it is not committed; null
   * after a delete). @throws InvalidInputError for a bad key, or a 129th key read.
   */
  get(key: string): Promise<KeyValue | null> {
    return this.run.get(key);
  }

  /** Buffers a write of `value` (text as UTF-8, or bytes, copied now) under `key`; sends nothing. @throws InvalidInputError for a bad key or value, or a 129th key written. */
  put(key: string, value: string | Uint8Array): void {
    this.run.put(key, value);
  }

  /** Buffers a delete of `key` (at commit, nothing happens if it does not exist then); sends nothing. @throws InvalidInputError for a bad key, or a 129th key written. */
  delete(key: string): void {
    this.run.delete(key);
  }
}

/**
 * One run of a transaction's function: its reads (each key's first answer, kept to be
 * validated at commit) and its buffered writes, and the requests that commit or validate
 * them. Internal: the function sees it through its `Transaction`.
 */
export class TransactionRun {
  /** Keys read from the cluster, with what was read (null: absent). */
  private readonly reads = new Map<string, KeyValue | null>();
  /** Reads under way, so two gets of one key at once share one answer. */
  private readonly reading = new Map<string, Promise<KeyValue | null>>();
  /** Writes in the order first made; a key's later write replaces its earlier one. */
  private readonly writes = new Map<string, BufferedWrite>();
  /** The errors this run's calls to the cluster failed with (a function that passes one on failed on the cluster, not on what it read). */
  private readonly callErrors = new WeakSet<object>();
  private finished = false;

  constructor(
    readonly attempt: number,
    private readonly host: TransactionHost,
    private readonly callOptions: () => ReadOptions,
  ) {}

  /** See `Transaction.get`. */
  async get(key: string): Promise<KeyValue | null> {
    this.checkOpen("get");
    checkKey(key);
    const written = this.writes.get(key);
    if (written !== undefined) return written.op === "delete" ? null : { key, value: written.bytes.slice(), revision: 0, createRevision: 0, version: 0 };
    if (this.reads.has(key)) return this.reads.get(key) ?? null;
    const inFlight = this.reading.get(key);
    if (inFlight !== undefined) return inFlight;
    if (this.reads.size + this.reading.size >= limits.txnComparesMax) {
      throw new InvalidInputError(`a transaction reads at most ${limits.txnComparesMax} keys (each read is a compare of its commit)`);
    }
    const read = this.host.get(key, { ...this.callOptions(), consistency: "linearizable" }).then(
      (kv) => {
        this.reads.set(key, kv);
        return kv;
      },
      (error: unknown) => {
        if (typeof error === "object" && error !== null) this.callErrors.add(error);
        throw error;
      },
    );
    const settled = read.finally(() => this.reading.delete(key));
    this.reading.set(key, settled);
    return settled;
  }

  /** See `Transaction.put`. */
  put(key: string, value: string | Uint8Array): void {
    this.checkOpen("put");
    checkKey(key);
    let bytes: Uint8Array;
    if (typeof value === "string") {
      checkWellFormed(value, "a transaction's value");
      bytes = new TextEncoder().encode(value);
    } else if (value instanceof Uint8Array) {
      bytes = value.slice();
    } else {
      throw new InvalidInputError(`a value is text or a Uint8Array, got ${value === null ? "null" : typeof value}`);
    }
    if (bytes.length > limits.valueBytesMax) throw new InvalidInputError(`value is ${bytes.length} bytes; the limit is ${limits.valueBytesMax}`);
    this.checkWriteRoom(key);
    this.writes.set(key, { op: "put", value: typeof value === "string" ? value : bytes, bytes });
  }

  /** See `Transaction.delete`. */
  delete(key: string): void {
    this.checkOpen("delete");
    checkKey(key);
    this.checkWriteRoom(key);
    this.writes.set(key, { op: "delete" });
  }

  /** Ends the run: no more operations; the reads under way settle (and are kept for validation) before this resolves. */
  async finish(): Promise<void> {
    this.finished = true;
    await Promise.allSettled([...this.reading.values()]);
  }

  /** Whether `error` is one of this run's calls to the cluster failing. */
  isCallError(error: unknown): boolean {
    return typeof error === "object" && error !== null && this.callErrors.has(error);
  }

  /**
   * The commit: the writes, if every read still holds. Null when there is nothing to send:
   * no writes, and at most one read (one linearizable read is consistent by itself).
   */
  commitRequest(): TxnRequest | null {
    if (this.writes.size === 0) return this.validationRequest();
    const success: TxnOperation[] = [...this.writes].map(([key, write]) => (write.op === "put" ? { op: "put", key, value: write.value } : { op: "delete", key }));
    return { compare: this.compares(), success };
  }

  /** Compares only, checking that the reads held together at one moment; null for one read or none. */
  validationRequest(): TxnRequest | null {
    return this.reads.size <= 1 ? null : { compare: this.compares() };
  }

  /** Keys read: how many. */
  get readCount(): number {
    return this.reads.size;
  }

  private compares(): TxnCompare[] {
    return [...this.reads].map(([key, kv]) => (kv === null ? { key, target: "version", op: "=", value: 0 } : { key, target: "revision", op: "=", value: kv.revision }));
  }

  private checkOpen(what: string): void {
    if (this.finished) {
      throw new TransactionFinishedError(`tx.${what}: this transaction's run (attempt ${this.attempt}) is over; a tx serves only the run of the function it was given to`);
    }
  }

  private checkWriteRoom(key: string): void {
    if (!this.writes.has(key) && this.writes.size >= limits.txnOpsPerBranchMax) {
      throw new InvalidInputError(`a transaction writes at most ${limits.txnOpsPerBranchMax} keys (each is an operation of its commit)`);
    }
  }
}

/** A key as the node takes it: non-empty, well-formed text, at most `keyBytesMax` bytes of UTF-8. */
function checkKey(key: string): void {
  if (typeof key !== "string" || key.length === 0) throw new InvalidInputError("a key is a non-empty string");
  checkWellFormed(key, "a key");
  const bytes = Buffer.byteLength(key, "utf8");
  if (bytes > limits.keyBytesMax) throw new InvalidInputError(`key is ${bytes} bytes; the limit is ${limits.keyBytesMax}`);
}

/** How a run ended: committed (or nothing to commit), or in a conflict that makes the function run again. */
type RunOutcome<T> = { readonly kind: "done"; readonly value: T; readonly revision: number | null } | { readonly kind: "conflict"; readonly why: string; readonly cause?: unknown };

/**
 * A conflict answer: 409 `txn_aborted` (a transaction across ranges found a key held by
 * another), or 503 `txn_locked` (a key held by a transaction across ranges, when the
 * client's own retries did not outlast it). Nothing was applied.
 */
function isConflictAnswer(error: unknown): error is HttpApiError {
  return error instanceof HttpApiError && ((error.status === 409 && error.code === "txn_aborted") || (error.status === 503 && error.code === "txn_locked"));
}

/** See `Client.transaction`. */
export async function runTransaction<T>(host: TransactionHost, fn: (tx: Transaction) => Promise<T>, options: TransactionOptions = {}): Promise<TransactionResult<T>> {
  if (typeof fn !== "function") throw new InvalidInputError("a transaction is a function: client.transaction(async (tx) => { ... })");
  const retries = integerOption(options.retries, TRANSACTION_RETRIES_DEFAULT, "retries", 0, TRANSACTION_RETRIES_MAX);
  const timeoutMs = integerOption(options.timeoutMs, host.timeoutMs, "timeoutMs", 1, TIMEOUT_MS_MAX);
  const context = new CallContext("transaction", timeoutMs, options.signal);
  // Each call gets what is left of the transaction's time, and the caller's signal: it ends
  // with its own typed error (a commit's with `outcomeUnknown` when it may have been applied).
  const signal = options.signal === undefined ? {} : { signal: options.signal };
  const callOptions = (): ReadOptions => ({ timeoutMs: Math.max(1, Math.ceil(context.remainingMs())), ...signal });
  try {
    let last: RunOutcome<T> | null = null;
    for (let attempt = 1; ; attempt++) {
      if (context.end !== null) throw ended(context, timeoutMs, attempt - 1, last);
      const outcome = await runOnce(new TransactionRun(attempt, host, callOptions), fn, host, callOptions, context, () => ended(context, timeoutMs, attempt, null));
      if (outcome.kind === "done") return { value: outcome.value, revision: outcome.revision, attempts: attempt };
      last = outcome;
      if (attempt > retries) {
        throw new TransactionConflictError({ attempts: attempt, message: `transaction: gave up after ${attempt} attempt${attempt === 1 ? "" : "s"}; nothing was written (last: ${outcome.why})`, cause: outcome.cause });
      }
      const pauseMs = host.backoffMs(attempt - 1);
      if (pauseMs > 0 && context.end === null) await sleep(pauseMs, undefined, { signal: context.signal }).catch(() => undefined);
    }
  } finally {
    context.dispose();
  }
}

/**
 * One run of the function, then its commit. Rejects with the function's error (its reads
 * held, or could not be checked), a call's error (a commit's outcome unknown among them:
 * never sent again blindly), or the transaction's end (timeout, signal).
 */
async function runOnce<T>(tx: TransactionRun, fn: (tx: Transaction) => Promise<T>, host: TransactionHost, callOptions: () => CallOptions, context: CallContext, ended: () => Error): Promise<RunOutcome<T>> {
  let value: T;
  try {
    value = await untilEnd(new Promise<T>((resolve) => resolve(fn(new Transaction(tx)))), context.signal);
  } catch (error) {
    await tx.finish();
    // The transaction's time ran out (or its signal fired) while the function ran: nothing was sent, so nothing was written.
    if (error instanceof CallEnded) throw ended();
    return afterThrow(tx, error, host, callOptions);
  }
  await tx.finish();
  if (context.end !== null) throw ended();
  const request = tx.commitRequest();
  if (request === null) return { kind: "done", value, revision: null };
  let answer: TxnResponse;
  try {
    answer = await host.txn(request, callOptions());
  } catch (error) {
    if (isConflictAnswer(error)) return { kind: "conflict", why: error.message, cause: error };
    throw error;
  }
  if (answer.succeeded) return { kind: "done", value, revision: answer.revision };
  return { kind: "conflict", why: `a key it read (one of ${tx.readCount}) changed before it could commit` };
}

/**
 * `running`, or a rejection with the signal's reason once it fires first: a function that
 * hangs does not hold its transaction past its timeout. The function is left to finish on
 * its own (its `tx` throws from then on); its outcome, whatever it is, is dropped.
 */
function untilEnd<T>(running: Promise<T>, signal: AbortSignal): Promise<T> {
  running.catch(() => undefined);
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onEnd = (): void => reject(signal.reason as Error);
    signal.addEventListener("abort", onEnd, { once: true });
    running.then(resolve, reject).finally(() => signal.removeEventListener("abort", onEnd));
  });
}

/**
 * The function threw. If it read two keys or more, what it saw may never have been (each
 * read is of its own moment), and the throw may come from that: its reads are validated
 * with a compares-only transaction. Changed: a conflict, so it runs again. Held (or could
 * not be checked, the cluster failing): its error, as it is. A call's own failure passed on
 * (a read that timed out) is the caller's to see, unvalidated.
 */
async function afterThrow<T>(tx: TransactionRun, error: unknown, host: TransactionHost, callOptions: () => CallOptions): Promise<RunOutcome<T>> {
  const request = tx.isCallError(error) ? null : tx.validationRequest();
  if (request === null) throw error;
  let answer: TxnResponse;
  try {
    answer = await host.txn(request, callOptions());
  } catch (validationError) {
    if (isConflictAnswer(validationError)) return { kind: "conflict", why: `the function threw, and its reads could not be validated (${validationError.message})`, cause: error };
    throw error;
  }
  if (answer.succeeded) throw error;
  return { kind: "conflict", why: `the function threw (${error instanceof Error ? error.message : String(error)}) after reads that did not hold together`, cause: error };
}

/** The error a transaction ends with when its time ran out or its signal fired between runs. Nothing was written. */
function ended(context: CallContext, timeoutMs: number, attempts: number, last: RunOutcome<unknown> | null): Error {
  const why = last !== null && last.kind === "conflict" ? ` (last conflict: ${last.why})` : "";
  if (context.end !== "timeout") return context.failure(false, null, null);
  const cause = last !== null && last.kind === "conflict" && last.cause !== undefined ? { cause: last.cause } : {};
  return new TimeoutError({ message: `transaction: its timeoutMs (${timeoutMs} ms) ran out after ${attempts} attempt${attempts === 1 ? "" : "s"}; nothing was written${why}`, endpoint: null, status: null, retryAfterMs: null, ...cause });
}
