// fast-check arbitraries for KV commands, shared by the core tests and the backend conformance suite.
import fc from "fast-check";
import type { TxnCommand, TxnCompare, TxnCompareOperator, TxnNumberTarget, TxnOperation } from "./command.js";

export const keyArbitrary = fc.constantFrom("a", "b", "ключ", "😀", "\uE000");
const valueArbitrary = fc.uint8Array({ maxLength: 8 });
const compareArbitrary: fc.Arbitrary<TxnCompare> = fc.oneof(
  fc.record({ key: keyArbitrary, target: fc.constant("value" as const), op: fc.constantFrom<TxnCompareOperator>("=", "!=", "<", ">"), value: valueArbitrary }).map(plain),
  fc.record({ key: keyArbitrary, target: fc.constantFrom<TxnNumberTarget>("modRevision", "createRevision", "version"), op: fc.constantFrom<TxnCompareOperator>("=", "!=", "<", ">"), value: fc.nat() }).map(plain),
);
/** A branch: any gets, and writes to distinct keys. */
const branchArbitrary: fc.Arbitrary<TxnOperation[]> = fc
  .tuple(
    fc.uniqueArray(fc.tuple(keyArbitrary, fc.option(valueArbitrary)), { selector: ([key]) => key, maxLength: 5 }),
    fc.array(keyArbitrary, { maxLength: 3 }),
  )
  .map(([writes, gets]) => [
    ...writes.map(([key, value]): TxnOperation => (value === null ? { op: "delete", key } : { op: "put", key, value })),
    ...gets.map((key): TxnOperation => ({ op: "get", key })),
  ]);
/** Transactions over a few keys (ASCII, Cyrillic, astral, private use), valid by construction. */
export const txnArbitrary: fc.Arbitrary<TxnCommand> = fc
  .tuple(fc.nat(), fc.nat(), fc.array(compareArbitrary, { maxLength: 4 }), branchArbitrary, branchArbitrary)
  .map(([clientId, sequence, compares, success, failure]) => ({ op: "txn", request: { clientId, sequence }, compares, success, failure }));

/** fast-check's records have no prototype; the store's objects do, and deepEqual compares them. */
function plain<T extends object>(value: T): T {
  return { ...value };
}

