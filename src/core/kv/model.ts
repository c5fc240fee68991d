import type { RequestId } from "./command.js";

/** One key's current version. Revisions are the store-wide counter of changes (etcd's). */
export interface KvRecord {
  readonly key: string;
  readonly value: Uint8Array;
  /** Revision of the change that created the key (since it last did not exist); >= 1. */
  readonly createRevision: number;
  /** Revision of the key's latest change; createRevision <= modRevision <= the store's revision. */
  readonly modRevision: number;
  /** Number of changes since creation, 1 for a new key. */
  readonly version: number;
}

/** The effect of one operation of a transaction's branch, in the branch's order. */
export type TxnOperationResult =
  | { readonly op: "put"; readonly revision: number }
  | { readonly op: "delete"; readonly deleted: 0 | 1 }
  /** The record as the get saw it (after the branch's earlier writes), or null if absent. */
  | { readonly op: "get"; readonly record: KvRecord | null }
  /**
   * A get of a duplicate transaction: the first application read a record, but a client's
   * session keeps only results that are small and bounded, not the records its gets read
   * (up to 128 values of 1 MiB). The client may read the key again.
   */
  | { readonly op: "get-forgotten" };

/** The effect of applying one command. */
export type KvResult =
  | { readonly op: "put"; readonly revision: number }
  | { readonly op: "delete"; readonly deleted: 0 | 1; readonly revision: number }
  | { readonly op: "cas"; readonly succeeded: boolean; readonly revision: number }
  /**
   * A transaction: whether every compare held (so the success branch ran), the store's
   * revision after it (the one its writes got, if it wrote), one result per operation.
   */
  | { readonly op: "txn"; readonly succeeded: boolean; readonly revision: number; readonly results: readonly TxnOperationResult[] }
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

/**
 * A client session (Raft dissertation, section 6.3): the highest sequence applied for the
 * client and its result, so a command delivered twice is applied once. `clientId` >= 1.
 */
export interface KvSession {
  readonly clientId: number;
  readonly sequence: number;
  readonly result: KvResult;
}

/** What the store records beside its data, written in the same transaction as the data. */
export interface KvMeta {
  /** The index of the last log entry applied; 0 before any. */
  readonly appliedIndex: number;
  /** The store-wide revision: the number of changes ever made; 0 before any. */
  readonly revision: number;
}

/** Client id 0 means "no session": such commands are never deduplicated. */
export const NO_SESSION = 0;
