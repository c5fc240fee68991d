import { assert, assertIndex } from "../common/assert.js";
import { ByteReader } from "../common/bytes.js";
import { InvalidInputError } from "../common/errors.js";
import { limits } from "../common/limits.js";
import { utf8Decode, utf8Encode } from "../common/utf8.js";
import { decodeCommand, type KvCommand, type RequestId } from "./command.js";

/** One key's current version. Revisions are the store-wide counter of changes (etcd's). */
export interface KvRecord {
  readonly key: string;
  readonly value: Uint8Array;
  /** Revision of the change that created the key (since it last did not exist). */
  readonly createRevision: number;
  /** Revision of the key's latest change. */
  readonly modRevision: number;
  /** Number of changes since creation, 1 for a new key. */
  readonly version: number;
}

/** The effect of applying one command. */
export type KvResult =
  | { readonly op: "put"; readonly revision: number }
  | { readonly op: "delete"; readonly deleted: 0 | 1; readonly revision: number }
  | { readonly op: "cas"; readonly succeeded: boolean; readonly revision: number }
  | { readonly op: "noop" }
  | { readonly op: "rejected"; readonly reason: string };

export interface Applied {
  readonly request: RequestId | null;
  readonly result: KvResult;
  /**
   * The command repeated a request this store already applied (or a newer one from the same
   * client): it changed nothing, and `result` is the first application's (or "rejected").
   */
  readonly duplicate: boolean;
}

/** Client id 0 means "no session": such commands are never deduplicated. */
export const NO_SESSION = 0;

/**
 * The replicated KV state machine: deterministic, in memory. Every node applies the same
 * entries in the same order and ends in the same state; `snapshot()` is byte-identical on
 * every node at the same applied index.
 */
export class KvStore {
  private readonly records = new Map<string, KvRecord>();
  private revision = 0;
  private appliedIndex = 0;
  /**
   * Client sessions (Raft dissertation, section 6.3): per client, the highest sequence
   * applied and its result, so a command delivered twice — a retried or duplicated
   * forwarded proposal — is applied once. Clients number their writes increasingly.
   */
  private readonly sessions = new Map<number, { readonly sequence: number; readonly result: KvResult }>();

  get applied(): number {
    return this.appliedIndex;
  }

  get currentRevision(): number {
    return this.revision;
  }

  get(key: string): KvRecord | undefined {
    return this.records.get(key);
  }

  /** Keys starting with `prefix`, in byte order of their UTF-16 code units, at most `limit`. */
  range(prefix: string, limit: number): KvRecord[] {
    const keys = [...this.records.keys()].filter((key) => key.startsWith(prefix)).sort();
    return keys.slice(0, limit).map((key) => this.records.get(key) as KvRecord);
  }

  /**
   * Applies the entry at `index` (which must follow the last applied one). An empty entry
   * is a no-op; a command that does not decode is skipped with a "rejected" result rather
   * than stopping the node, since every replica sees the same bytes and skips alike.
   */
  apply(index: number, data: Uint8Array): Applied {
    assertIndex(index, "applied index");
    assert(index === this.appliedIndex + 1, `apply out of order: ${index} after ${this.appliedIndex}`);
    this.appliedIndex = index;
    if (data.length === 0) return { request: null, result: { op: "noop" }, duplicate: false };
    let command: KvCommand;
    try {
      command = decodeCommand(data);
    } catch (error) {
      if (error instanceof InvalidInputError) return { request: null, result: { op: "rejected", reason: error.message }, duplicate: false };
      throw error;
    }
    const { clientId, sequence } = command.request;
    if (clientId !== NO_SESSION) {
      const session = this.sessions.get(clientId);
      if (session !== undefined && sequence <= session.sequence) {
        const result: KvResult = sequence === session.sequence ? session.result : { op: "rejected", reason: "superseded by a newer request from the same client" };
        return { request: command.request, result, duplicate: true };
      }
    }
    const result = this.execute(command);
    if (clientId !== NO_SESSION) this.sessions.set(clientId, { sequence, result });
    return { request: command.request, result, duplicate: false };
  }

  private execute(command: KvCommand): KvResult {
    const current = this.records.get(command.key);
    switch (command.op) {
      case "put":
        return { op: "put", revision: this.write(command.key, command.value, current) };
      case "delete":
        if (current === undefined) return { op: "delete", deleted: 0, revision: this.revision };
        this.records.delete(command.key);
        return { op: "delete", deleted: 1, revision: ++this.revision };
      case "cas-value": {
        const matches = command.expected === null ? current === undefined : current !== undefined && bytesEqual(current.value, command.expected);
        if (!matches) return { op: "cas", succeeded: false, revision: this.revision };
        return { op: "cas", succeeded: true, revision: this.write(command.key, command.value, current) };
      }
      case "cas-revision": {
        const actual = current === undefined ? 0 : current.modRevision;
        if (actual !== command.expectedRevision) return { op: "cas", succeeded: false, revision: this.revision };
        return { op: "cas", succeeded: true, revision: this.write(command.key, command.value, current) };
      }
    }
  }

  private write(key: string, value: Uint8Array, current: KvRecord | undefined): number {
    const revision = ++this.revision;
    this.records.set(key, {
      key,
      value,
      createRevision: current === undefined ? revision : current.createRevision,
      modRevision: revision,
      version: current === undefined ? 1 : current.version + 1,
    });
    return revision;
  }

  /** A deterministic snapshot: keys sorted, so equal states give equal bytes. */
  snapshot(): Uint8Array {
    const keys = [...this.records.keys()].sort();
    const encoded = keys.map((key) => {
      const record = this.records.get(key) as KvRecord;
      return { key: utf8Encode(key), record };
    });
    const sessions = [...this.sessions.entries()].sort((a, b) => a[0] - b[0]);
    let size = 8 + 8 + 4 + 4 + sessions.length * SESSION_BYTES;
    for (const { key, record } of encoded) size += 4 + key.length + 4 + record.value.length + 24;
    const out = new Uint8Array(size);
    const view = new DataView(out.buffer);
    view.setFloat64(0, this.appliedIndex);
    view.setFloat64(8, this.revision);
    view.setUint32(16, encoded.length);
    let at = 20;
    for (const { key, record } of encoded) {
      view.setUint32(at, key.length);
      out.set(key, at + 4);
      at += 4 + key.length;
      view.setUint32(at, record.value.length);
      out.set(record.value, at + 4);
      at += 4 + record.value.length;
      view.setFloat64(at, record.createRevision);
      view.setFloat64(at + 8, record.modRevision);
      view.setFloat64(at + 16, record.version);
      at += 24;
    }
    view.setUint32(at, sessions.length);
    at += 4;
    for (const [clientId, session] of sessions) {
      view.setFloat64(at, clientId);
      view.setFloat64(at + 8, session.sequence);
      at = writeResult(view, at + 16, session.result);
    }
    assert(at === size, "snapshot size mismatch");
    return out;
  }

  static restore(bytes: Uint8Array): KvStore {
    const reader = new ByteReader(bytes, "KV snapshot");
    const store = new KvStore();
    store.appliedIndex = reader.safeInteger();
    store.revision = reader.safeInteger();
    const count = reader.u32();
    for (let i = 0; i < count; i++) {
      const key = utf8Decode(reader.bytes(limits.keyBytesMax));
      const value = reader.bytes(limits.valueBytesMax);
      const createRevision = reader.safeInteger();
      const modRevision = reader.safeInteger();
      const version = reader.safeInteger();
      store.records.set(key, { key, value, createRevision, modRevision, version });
    }
    const sessionCount = reader.u32();
    for (let i = 0; i < sessionCount; i++) {
      const clientId = reader.safeInteger();
      const sequence = reader.safeInteger();
      store.sessions.set(clientId, { sequence, result: readResult(reader) });
    }
    reader.expectEnd();
    return store;
  }
}

/** A session's result in a snapshot: u8 kind, u8 flag, f64 revision. */
const SESSION_BYTES = 8 + 8 + 1 + 1 + 8;
const RESULT_KINDS = ["put", "delete", "cas", "noop", "rejected"] as const;

function writeResult(view: DataView, at: number, result: KvResult): number {
  view.setUint8(at, RESULT_KINDS.indexOf(result.op));
  const flag = result.op === "delete" ? result.deleted : result.op === "cas" ? (result.succeeded ? 1 : 0) : 0;
  view.setUint8(at + 1, flag);
  view.setFloat64(at + 2, "revision" in result ? result.revision : 0);
  return at + 10;
}

function readResult(reader: ByteReader): KvResult {
  const kind = RESULT_KINDS[reader.u8()];
  const flag = reader.u8();
  const revision = reader.safeInteger();
  if (flag > 1) throw new InvalidInputError("KV snapshot has a bad session result flag");
  switch (kind) {
    case "put":
      return { op: "put", revision };
    case "delete":
      return { op: "delete", deleted: flag as 0 | 1, revision };
    case "cas":
      return { op: "cas", succeeded: flag === 1, revision };
    case "noop":
      return { op: "noop" };
    case "rejected":
      return { op: "rejected", reason: "superseded by a newer request from the same client" };
    default:
      throw new InvalidInputError("KV snapshot has an unknown session result kind");
  }
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
