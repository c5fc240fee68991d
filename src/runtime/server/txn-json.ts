/**
 * `POST /v1/txn` bodies to transaction commands and results back to JSON (docs/http-api.md).
 * Everything a client sends is checked here with a message that names the field; the
 * command encoder then checks the sizes.
 */
import { InvalidInputError } from "../../core/common/errors.js";
import type { TxnCompare, TxnCompareOperator, TxnOperation } from "../../core/kv/command.js";
import type { KvResult } from "../../core/kv/store.js";
import type { KvOperation } from "./driver.js";
import { recordJson } from "./http-api.js";

const OPERATORS: readonly TxnCompareOperator[] = ["=", "!=", "<", ">"];
const NUMBER_TARGETS = { revision: "modRevision", modRevision: "modRevision", createRevision: "createRevision", version: "version" } as const;
const encoder = new TextEncoder();

export function parseTxnRequest(body: Uint8Array): KvOperation {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
  } catch (error) {
    throw new InvalidInputError(`the transaction is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new InvalidInputError("a transaction is a JSON object with compare, success and failure lists");
  const body_ = parsed as Record<string, unknown>;
  for (const field of Object.keys(body_)) {
    if (field !== "compare" && field !== "success" && field !== "failure") throw new InvalidInputError(`unknown field ${JSON.stringify(field)}; a transaction has compare, success and failure`);
  }
  return {
    op: "txn",
    compares: list(body_["compare"], "compare").map((item, i) => parseCompare(item, `compare[${i}]`)),
    success: list(body_["success"], "success").map((item, i) => parseOperation(item, `success[${i}]`)),
    failure: list(body_["failure"], "failure").map((item, i) => parseOperation(item, `failure[${i}]`)),
  };
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

function parseCompare(value: unknown, where: string): TxnCompare {
  const item = object(value, where);
  const op = item["op"];
  if (!OPERATORS.includes(op as TxnCompareOperator)) throw new InvalidInputError(`${where}.op must be one of ${OPERATORS.join(" ")}`);
  const target = item["target"];
  if (target === "value") {
    if (typeof item["value"] !== "string") throw new InvalidInputError(`${where}.value must be a string for target "value"`);
    return { key: key(item, where), target: "value", op: op as TxnCompareOperator, value: encoder.encode(item["value"]) };
  }
  if (typeof target !== "string" || !(target in NUMBER_TARGETS)) throw new InvalidInputError(`${where}.target must be value, revision, createRevision or version`);
  const number = item["value"];
  if (typeof number !== "number" || !Number.isSafeInteger(number) || number < 0) throw new InvalidInputError(`${where}.value must be a non-negative integer for target ${JSON.stringify(target)}`);
  return { key: key(item, where), target: NUMBER_TARGETS[target as keyof typeof NUMBER_TARGETS], op: op as TxnCompareOperator, value: number };
}

function parseOperation(value: unknown, where: string): TxnOperation {
  const item = object(value, where);
  switch (item["op"]) {
    case "put":
      if (typeof item["value"] !== "string") throw new InvalidInputError(`${where}.value must be a string`);
      return { op: "put", key: key(item, where), value: encoder.encode(item["value"]) };
    case "delete":
      return { op: "delete", key: key(item, where) };
    case "get":
      return { op: "get", key: key(item, where) };
    default:
      throw new InvalidInputError(`${where}.op must be put, delete or get`);
  }
}

export function txnResultJson(result: Extract<KvResult, { op: "txn" }>): object {
  return {
    succeeded: result.succeeded,
    revision: result.revision,
    results: result.results.map((item) => {
      switch (item.op) {
        case "put":
          return { revision: item.revision };
        case "delete":
          return { deleted: item.deleted };
        case "get":
          return { kv: item.record === null ? null : recordJson(item.record) };
        case "get-forgotten":
          return { kv: null, forgotten: true };
      }
    }),
  };
}
