import assert from "node:assert/strict";
import { test } from "node:test";
import { decodeGroupLogRecord, decodeLogRecord, encodeLogRecord, type LogRecord, LogRecordDecodeError } from "./log-record.js";

const entries = [
  { index: 7, term: 3, data: new Uint8Array([1, 2, 3]) },
  { index: 8, term: 2 ** 40, data: new Uint8Array(0) },
  { index: 9, term: 2 ** 40, data: new Uint8Array([4, 5]), kind: "config" as const },
];

const records: LogRecord[] = [
  { kind: "hard-state", hardState: new Uint8Array([9, 8, 7]) },
  { kind: "entries", entries },
  { kind: "checkpoint-begin", snapshot: { index: 6, term: 3, kind: "own" }, sweep: false },
  { kind: "checkpoint-begin", snapshot: { index: 2 ** 53 - 1, term: 1, kind: "installed" }, sweep: true },
  { kind: "checkpoint-begin", snapshot: null, sweep: false },
  { kind: "checkpoint-entries", entries },
  { kind: "checkpoint-end", entryCount: 2, hardState: new Uint8Array([5]) },
  { kind: "checkpoint-end", entryCount: 0, hardState: null },
  { kind: "sweep-begin" },
  { kind: "sweep-end", groupCount: 3 },
  { kind: "compact", index: 12, term: 4 },
  { kind: "drop" },
];

test("every record kind survives encoding and decoding, with its group", () => {
  for (const record of records) assert.deepEqual(decodeLogRecord(encodeLogRecord(record)), record);
  for (const group of [0, 1, 300, 2 ** 32 - 1]) {
    for (const record of records) assert.deepEqual(decodeGroupLogRecord(encodeLogRecord(record, group)), { record, group, legacy: false });
  }
});

test("a record cut anywhere, or with bytes after it, is refused as a decode error, never misread", () => {
  for (const record of records) {
    const encoded = encodeLogRecord(record);
    // A hard state is the rest of its record (the frame's CRC guards its length), so a cut
    // inside it still decodes, as a shorter hard state; every cut before it is refused.
    const shortest = record.kind === "hard-state" ? 6 : record.kind === "checkpoint-end" && record.hardState !== null ? 15 : encoded.length;
    for (let length = 0; length < shortest; length++) {
      assert.throws(() => decodeLogRecord(encoded.subarray(0, length)), LogRecordDecodeError, `${record.kind} cut to ${length} bytes`);
    }
    if (record.kind !== "hard-state" && !(record.kind === "checkpoint-end" && record.hardState !== null)) {
      assert.throws(() => decodeLogRecord(Uint8Array.from([...encoded, 0])), /trail/, `${record.kind} with a byte after it`);
    }
  }
});

test("an unknown format or kind, or an index that is not a safe integer, is refused", () => {
  const encoded = encodeLogRecord({ kind: "entries", entries });
  assert.throws(() => decodeLogRecord(Uint8Array.from([4, ...encoded.subarray(1)])), /format 4/);
  const badKind = Uint8Array.from(encoded);
  badKind[6 + 4 + 16] = 7; // the first entry's kind
  assert.throws(() => decodeLogRecord(badKind), /unknown kind 7/);
  assert.throws(() => decodeLogRecord(Uint8Array.from([3, 42, 0, 0, 0, 0])), /unknown record kind 42/);
  const broken = Uint8Array.from(encoded);
  new DataView(broken.buffer).setFloat64(6 + 4, 1.5, true); // the first entry's index
  assert.throws(() => decodeLogRecord(broken), /entry 0's index is 1.5/);
  assert.throws(() => decodeLogRecord(encodeLogRecord({ kind: "checkpoint-end", entryCount: -1, hardState: null })), /not a safe non-negative integer/);
});

test("format 1 records, written before entries had a kind, are still read", () => {
  // u8 format 1 | u8 kind 2 (entries) | u32 count | f64 index | f64 term | u32 length | data
  const record = new Uint8Array(2 + 4 + 8 + 8 + 4 + 2);
  const view = new DataView(record.buffer);
  view.setUint8(0, 1);
  view.setUint8(1, 2);
  view.setUint32(2, 1, true);
  view.setFloat64(6, 5, true);
  view.setFloat64(14, 2, true);
  view.setUint32(22, 2, true);
  record.set([8, 9], 26);
  assert.deepEqual(decodeLogRecord(record), { kind: "entries", entries: [{ index: 5, term: 2, data: new Uint8Array([8, 9]) }] });
});

test("format 2 records, written before groups, are read as group 0's, and may hold only the kinds of then", () => {
  // u8 format 2 | u8 kind 2 (entries) | u32 count | f64 index | f64 term | u8 kind | u32 length | data
  const record = new Uint8Array(2 + 4 + 8 + 8 + 1 + 4 + 1);
  const view = new DataView(record.buffer);
  view.setUint8(0, 2);
  view.setUint8(1, 2);
  view.setUint32(2, 1, true);
  view.setFloat64(6, 3, true);
  view.setFloat64(14, 1, true);
  view.setUint8(22, 1);
  view.setUint32(23, 1, true);
  record.set([7], 27);
  assert.deepEqual(decodeGroupLogRecord(record), { record: { kind: "entries", entries: [{ index: 3, term: 1, data: new Uint8Array([7]), kind: "config" }] }, group: 0, legacy: true });
  assert.throws(() => decodeLogRecord(Uint8Array.from([2, 6])), /kind 6 in format 2/);
});
