// A range born of a split holds its keys' records and an empty history (history.ts, "Born of
// a split"): it must answer every read of the past, every watch and every snapshot as a range
// whose history was written out whole at its birth (what a split made before).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { utf8Encode } from "../common/utf8.js";
import { MemoryKvBackend } from "./backend.js";
import { encodeCommand, type KvCommand } from "./command.js";
import type { KvChange, KvRecord } from "./model.js";
import { decodeSnapshot, encodeSnapshot } from "./snapshot.js";
import { childSnapshot, RANGE_BIRTH_INDEX } from "./split.js";
import { KvStore } from "./store.js";

const request = { clientId: 0, sequence: 0, timeMs: 1_000 };
const KEYS = ["a", "b", "ba", "c", "d"];
const SPAN = { start: "a", end: null };

/** The records a range is born with: some keys, last written at revisions up to `bornAt`. */
const birthArbitrary = fc
  .uniqueArray(fc.record({ key: fc.constantFrom(...KEYS), createRevision: fc.integer({ min: 1, max: 6 }), extra: fc.integer({ min: 0, max: 4 }), version: fc.integer({ min: 1, max: 3 }) }), { selector: (spec) => spec.key, maxLength: KEYS.length })
  .map((specs) => {
    const records: KvRecord[] = specs
      .map((spec) => ({ key: spec.key, value: utf8Encode(`${spec.key}@${spec.createRevision + spec.extra}`), createRevision: spec.createRevision, modRevision: spec.createRevision + spec.extra, version: Math.min(spec.version, spec.extra + 1) }))
      .sort((x, y) => (x.key < y.key ? -1 : 1));
    const bornAt = Math.max(1, ...records.map((record) => record.modRevision));
    return { records, bornAt };
  });

const commandArbitrary: fc.Arbitrary<KvCommand> = fc.oneof(
  fc.record({ key: fc.constantFrom(...KEYS), value: fc.string({ maxLength: 3 }) }).map(({ key, value }): KvCommand => ({ op: "put", request, key, value: utf8Encode(value) })),
  fc.constantFrom(...KEYS).map((key): KvCommand => ({ op: "delete", request, key })),
  fc.constantFrom("b", "c").map((prefix): KvCommand => ({ op: "delete-prefix", request, prefix })),
  fc.uniqueArray(fc.constantFrom(...KEYS), { minLength: 2, maxLength: 2 }).map(([put, gone]): KvCommand => ({ op: "txn", request, compares: [], success: [{ op: "put", key: put as string, value: utf8Encode("t") }, { op: "delete", key: gone as string }], failure: [] })),
  fc.integer({ min: 0, max: 3 }).map((back): KvCommand => ({ op: "compact", request, revision: back })),
);

/** The same birth written out whole: every record's change in the history, as splits made it before. */
function eagerChild(records: readonly KvRecord[], bornAt: number): KvStore {
  const changes: KvChange[] = records.map((record) => ({ key: record.key, revision: record.modRevision, record }));
  changes.sort((x, y) => x.revision - y.revision || (x.key < y.key ? -1 : 1));
  const bytes = encodeSnapshot({ appliedIndex: RANGE_BIRTH_INDEX, revision: bornAt, clockMs: 0 }, records, [], { compactRevision: bornAt, changes }, [], undefined, { ...SPAN, epoch: 2, nextRangeId: 0 });
  return KvStore.restore(bytes, spanned());
}

function spanned(): MemoryKvBackend {
  const backend = new MemoryKvBackend();
  backend.span = SPAN;
  return backend;
}

/** Everything a client can read of the past and watch, at every revision still readable. */
function observe(store: KvStore): unknown {
  const seen: unknown[] = [store.compactRevision, store.currentRevision, store.keys, store.range("", 100)];
  for (let revision = store.compactRevision; revision <= store.currentRevision; revision++) {
    seen.push(store.rangeAt("", 100, { revision }), store.rangeAt("b", 1, { revision, after: "a" }));
    for (const key of KEYS) seen.push(store.getAt(key, revision) ?? null, store.recordBefore(key, revision + 1) ?? "unknown");
  }
  // A watch from the compaction point, page by page, and from just after it.
  const watched: KvChange[] = [];
  let position = { revision: store.compactRevision, afterKey: "" };
  for (let page = store.changesAfter(position, 2); page.length > 0; page = store.changesAfter(position, 2)) {
    watched.push(...page);
    const last = page[page.length - 1] as KvChange;
    position = { revision: last.revision, afterKey: last.key };
  }
  seen.push(watched, store.changesAfter({ revision: store.compactRevision + 1, afterKey: "" }, 100));
  return seen;
}

function compactionOf(command: KvCommand, store: KvStore): KvCommand {
  // A compaction `back` revisions below the current one: at or above the compaction point, or refused alike.
  return command.op === "compact" ? { ...command, revision: Math.max(1, store.currentRevision - command.revision) } : command;
}

describe("a range born of a split", () => {
  test("answers every read of the past, watch and snapshot as one whose birth was written out whole", () => {
    fc.assert(
      fc.property(birthArbitrary, fc.array(commandArbitrary, { maxLength: 12 }), ({ records, bornAt }, commands) => {
        const born = KvStore.restore(childSnapshot(records, bornAt, 0, SPAN, 2), spanned());
        const eager = eagerChild(records, bornAt);
        assert.deepEqual(observe(born), observe(eager), "as born");
        for (const each of commands) {
          const command = encodeCommand(compactionOf(each, born));
          assert.deepEqual(born.apply(born.applied + 1, command), eager.apply(eager.applied + 1, command));
          while (born.purgeHistory(2) || eager.purgeHistory(2));
          assert.deepEqual(observe(born), observe(eager), `after ${each.op}`);
        }
        // Its snapshot restores to the same answers, on another replica.
        const copy = KvStore.restore(born.snapshot(), spanned());
        assert.deepEqual(observe(copy), observe(eager), "restored from its snapshot");
      }),
      { numRuns: 300 },
    );
  });

  test("its first write of a key puts the key's change as born first, so reads between still see it", () => {
    const record = { key: "b", value: utf8Encode("old"), createRevision: 2, modRevision: 3, version: 2 };
    const born = KvStore.restore(childSnapshot([record], 5, 0, SPAN, 2), spanned());
    assert.deepEqual(born.backend.changeAtOrBefore("b", 5), undefined, "born with an empty history");
    born.apply(born.applied + 1, encodeCommand({ op: "put", request, key: "b", value: utf8Encode("new") }));
    assert.deepEqual(born.backend.changeAtOrBefore("b", 5), { key: "b", revision: 3, record });
    assert.deepEqual(born.getAt("b", 5), record);
    assert.equal(born.get("b")?.modRevision, 6);
  });

  test("its snapshot says where it was born, and one whose history misses a later record's change is refused", () => {
    const records = [{ key: "b", value: utf8Encode("v"), createRevision: 2, modRevision: 4, version: 1 }];
    const decoded = decodeSnapshot(childSnapshot(records, 4, 0, SPAN, 2), { record: () => undefined, session: () => undefined });
    assert.equal(decoded.range?.bornAt, 4);
    assert.equal(decoded.compactRevision, 4);
    // Born at 3 but holding a record written at 4 with no change for it: no store writes that.
    const bad = encodeSnapshot({ appliedIndex: RANGE_BIRTH_INDEX, revision: 5, clockMs: 0 }, records, [], { compactRevision: 4, changes: [] }, [], undefined, { ...SPAN, epoch: 2, nextRangeId: 0, bornAt: 3 });
    assert.throws(() => KvStore.restore(bad, spanned()), /history has 0 changes for its 1 records/);
    // Born after its compaction point: refused too.
    const late = encodeSnapshot({ appliedIndex: RANGE_BIRTH_INDEX, revision: 5, clockMs: 0 }, records, [], { compactRevision: 4, changes: [] }, [], undefined, { ...SPAN, epoch: 2, nextRangeId: 0, bornAt: 5 });
    assert.throws(() => KvStore.restore(late, spanned()), /born at revision 5/);
  });
});
