/**
 * `POST /v1/txn` bodies to transaction commands and results back to JSON (docs/http-api.md).
 * Everything a client sends is checked here with a message that names the field, an unknown
 * field included (a misspelt or unsupported one must not be silently dropped: it would
 * change what the transaction means); the command encoder then checks the sizes.
 */
import { InvalidInputError } from "../../core/common/errors.js";
import type { TxnCommand, TxnCompare, TxnCompareOperator, TxnOperation } from "../../core/kv/command.js";
import type { KvResult } from "../../core/kv/store.js";
import { recordJson } from "./kv-routes.js";

const OPERATORS: readonly TxnCompareOperator[] = ["=", "!=", "<", ">"];
const NUMBER_TARGETS = { revision: "modRevision", modRevision: "modRevision", createRevision: "createRevision", version: "version" } as const;
const TRANSACTION_FIELDS = ["compare", "success", "failure"];
const COMPARE_FIELDS = ["key", "target", "op", "value", "encoding"];
/** The fields each operation takes. */
const OPERATION_FIELDS: Readonly<Record<TxnOperation["op"], readonly string[]>> = {
  put: ["op", "key", "value", "encoding", "lease"],
  get: ["op", "key"],
  delete: ["op", "key"],
};
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const encoder = new TextEncoder();

export function parseTxnRequest(body: Uint8Array): Omit<TxnCommand, "request"> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
  } catch (error) {
    throw new InvalidInputError(`the transaction is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new InvalidInputError("a transaction is a JSON object with compare, success and failure lists");
  const transaction = parsed as Record<string, unknown>;
  refuseUnknownFields(transaction, TRANSACTION_FIELDS, "the transaction");
  return {
    op: "txn",
    compares: list(transaction["compare"], "compare").map((item, i) => parseCompare(item, `compare[${i}]`)),
    success: list(transaction["success"], "success").map((item, i) => parseOperation(item, `success[${i}]`)),
    failure: list(transaction["failure"], "failure").map((item, i) => parseOperation(item, `failure[${i}]`)),
  };
}

function refuseUnknownFields(item: Record<string, unknown>, known: readonly string[], where: string): void {
  const unknown = Object.keys(item).filter((field) => !known.includes(field));
  if (unknown.length === 0) return;
  const hint = where.startsWith("success") || where.startsWith("failure") ? rangeDeleteHint(item, unknown) : "";
  throw new InvalidInputError(`${where} has unknown field${unknown.length === 1 ? "" : "s"} ${unknown.map((field) => JSON.stringify(field)).join(", ")}; it takes ${known.join(", ")}${hint}`);
}

/** A `"prefix"` on a delete: range deletes are not part of transactions (yet), and say where they are. */
function rangeDeleteHint(item: Record<string, unknown>, unknown: readonly string[]): string {
  return item["op"] === "delete" && unknown.includes("prefix") ? ". A range delete is not part of a transaction: send DELETE /v1/kv/{prefix}?prefix" : "";
}

function list(value: unknown, field: string): unknown[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new InvalidInputError(`${field} must be a list`);
  return value;
}

function object(value: unknown, where: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new InvalidInputError(`${where} must be an object`);
  return value as Record<string, unknown>;
}

function key(item: Record<string, unknown>, where: string): string {
  const value = item["key"];
  if (typeof value !== "string" || value.length === 0) throw new InvalidInputError(`${where}.key must be a non-empty string`);
  return value;
}

/** A value's bytes: the string as UTF-8, or with `"encoding": "base64"` the bytes it encodes. */
function valueBytes(item: Record<string, unknown>, where: string): Uint8Array {
  const value = item["value"];
  const encoding = item["encoding"];
  if (typeof value !== "string") throw new InvalidInputError(`${where}.value must be a string (text, or base64 with "encoding": "base64")`);
  if (encoding === undefined) return encoder.encode(value);
  if (encoding !== "base64") throw new InvalidInputError(`${where}.encoding must be "base64" (or left out for text), not ${JSON.stringify(encoding)}`);
  if (!BASE64.test(value)) throw new InvalidInputError(`${where}.value is not base64 (padded, standard alphabet)`);
  return new Uint8Array(Buffer.from(value, "base64"));
}

function parseCompare(value: unknown, where: string): TxnCompare {
  const item = object(value, where);
  refuseUnknownFields(item, COMPARE_FIELDS, where);
  const op = item["op"];
  if (!OPERATORS.includes(op as TxnCompareOperator)) throw new InvalidInputError(`${where}.op must be one of ${OPERATORS.join(" ")}`);
  const target = item["target"];
  if (target === "value") return { key: key(item, where), target: "value", op: op as TxnCompareOperator, value: valueBytes(item, where) };
  if (typeof target !== "string" || !(target in NUMBER_TARGETS)) throw new InvalidInputError(`${where}.target must be value, revision, createRevision or version`);
  if (item["encoding"] !== undefined) throw new InvalidInputError(`${where}.encoding is only for target "value"`);
  const number = item["value"];
  if (typeof number !== "number" || !Number.isSafeInteger(number) || number < 0) throw new InvalidInputError(`${where}.value must be a non-negative integer for target ${JSON.stringify(target)}`);
  return { key: key(item, where), target: NUMBER_TARGETS[target as keyof typeof NUMBER_TARGETS], op: op as TxnCompareOperator, value: number };
}

function parseOperation(value: unknown, where: string): TxnOperation {
  const item = object(value, where);
  const op = item["op"];
  if (op !== "put" && op !== "delete" && op !== "get") throw new InvalidInputError(`${where}.op must be put, delete or get`);
  refuseUnknownFields(item, OPERATION_FIELDS[op], where);
  if (op === "put") {
    const lease = item["lease"];
    if (lease === undefined) return { op, key: key(item, where), value: valueBytes(item, where) };
    if (typeof lease !== "number" || !Number.isSafeInteger(lease) || lease < 1) throw new InvalidInputError(`${where}.lease must be a lease id (a positive integer, from POST /v1/leases)`);
    return { op, key: key(item, where), value: valueBytes(item, where), lease };
  }
  return { op, key: key(item, where) };
}

/**
 * The answer: each result names its operation (`op`), so a client tells them apart without
 * guessing from the fields. A delete's `revision` is the transaction's (the store's after
 * it), which is the revision its delete took when it deleted a key.
 */
export function txnResultJson(result: Extract<KvResult, { op: "txn" }>): object {
  return {
    succeeded: result.succeeded,
    revision: result.revision,
    results: result.results.map((item) => {
      switch (item.op) {
        case "put":
          return { op: "put", revision: item.revision };
        case "delete":
          return { op: "delete", deleted: item.deleted, revision: result.revision };
        case "get":
          return { op: "get", kv: item.record === null ? null : recordJson(item.record) };
        case "get-forgotten":
          return { op: "get", kv: null, forgotten: true };
      }
    }),
  };
}
