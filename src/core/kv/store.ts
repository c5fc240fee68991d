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
}

/**
 * The replicated KV state machine: deterministic, in memory. Every node applies the same
 * entries in the same order and ends in the same state; `snapshot()` is byte-identical on
 * every node at the same applied index.
 */
export class KvStore {
  private readonly records = new Map<string, KvRecord>();
  private revision = 0;
  private appliedIndex = 0;

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
    if (data.length === 0) return { request: null, result: { op: "noop" } };
    let command: KvCommand;
    try {
      command = decodeCommand(data);
    } catch (error) {
      if (error instanceof InvalidInputError) return { request: null, result: { op: "rejected", reason: error.message } };
      throw error;
    }
    return { request: command.request, result: this.execute(command) };
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
    let size = 8 + 8 + 4;
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
    reader.expectEnd();
    return store;
  }
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
