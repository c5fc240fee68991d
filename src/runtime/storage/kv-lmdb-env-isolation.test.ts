// Groups sharing one LMDB environment are isolated: random commands on 2 to 4 groups with
// disjoint spans, each group compared with a memory store of its own (the reference) after
// every step that matters: the same answers, the same reads of the backend, and snapshots
// byte-identical to the memory store's. Clearing or dropping one group leaves every other
// byte-identical, and reopening the environment gives every group back as it was.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import fc from "fast-check";
import { AssertionError } from "../../core/common/assert.js";
import { compareUtf8, utf8Encode } from "../../core/common/utf8.js";
import { MemoryKvBackend } from "../../core/kv/backend.js";
import { encodeCommand } from "../../core/kv/command.js";
import type { KvMeta } from "../../core/kv/model.js";
import { KvStore, SELF_ASSIGNED_SESSIONS_FROM } from "../../core/kv/store.js";
import type { LmdbKvBackend } from "./kv-lmdb.js";
import { LmdbKvEnvironment } from "./kv-lmdb-env.js";
import type { KvSpan } from "./kv-lmdb-groups.js";

const KEYS = ["a", "a/1", "b", "b/é", "c", "c😀", "d", "d\u0000", "é", "ключ", "\uE000", "😀", "😀/x"];
const CUTS = ["b", "c", "d", "é", "😀"];
const GROUP_IDS = [0, 1, 7, 300, 0xffff_ffff];
/** Range reads take each; range deletes all but the first (a delete of every key is refused). */
const PREFIXES = ["", "a", "b/", "c", "d", "é", "😀", "z"];
const T0 = Date.UTC(2026, 11, 1);
const EVERYTHING = 1_000_000;

type Step =
  | { readonly kind: "key"; readonly key: string; readonly op: "put" | "delete" | "leased"; readonly client: number; readonly repeat: boolean; readonly value: number }
  | { readonly kind: "group"; readonly at: number; readonly op: "delete-prefix" | "lease-grant" | "lease-revoke" | "clock" | "compact" | "purge"; readonly number: number }
  | { readonly kind: "clear" | "drop" | "snapshot"; readonly at: number }
  | { readonly kind: "reopen" };

const stepArbitrary: fc.Arbitrary<Step> = fc.oneof(
  { weight: 10, arbitrary: fc.record({ kind: fc.constant("key" as const), key: fc.constantFrom(...KEYS), op: fc.constantFrom("put" as const, "put" as const, "delete" as const, "leased" as const), client: fc.nat({ max: 2 }), repeat: fc.boolean(), value: fc.nat({ max: 99 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("group" as const), at: fc.nat({ max: 3 }), op: fc.constantFrom("delete-prefix" as const, "lease-grant" as const, "lease-revoke" as const, "clock" as const, "compact" as const, "purge" as const), number: fc.nat({ max: 40 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constantFrom("clear" as const, "drop" as const, "snapshot" as const), at: fc.nat({ max: 3 }) }) },
  { weight: 1, arbitrary: fc.constant({ kind: "reopen" as const }) },
);

/** One group: its store in the environment, and its reference in memory. */
interface Twin {
  readonly group: number;
  readonly span: KvSpan;
  backend: LmdbKvBackend;
  store: KvStore;
  memory: MemoryKvBackend;
  reference: KvStore;
  /** The last sequence each client used, for retries. */
  readonly sequences: Map<number, number>;
  /** The grant indexes of its leases, for leased puts and revokes. */
  readonly leases: number[];
}

function spansOf(cuts: readonly string[]): KvSpan[] {
  const sorted = [...cuts].sort(compareUtf8);
  return [...sorted, null].map((end, i) => ({ start: i === 0 ? "" : (sorted[i - 1] as string), end }));
}

function holds(span: KvSpan, key: string): boolean {
  return compareUtf8(key, span.start) >= 0 && (span.end === null || compareUtf8(key, span.end) < 0);
}

function ownerOf(twins: readonly Twin[], key: string): Twin {
  const owner = twins.find(({ span }) => holds(span, key));
  assert.ok(owner !== undefined, `the spans cover ${JSON.stringify(key)}`);
  return owner;
}

/** The snapshot an LMDB group's builder gives, stepping a few records at a time. */
function builtSnapshot(backend: LmdbKvBackend): Uint8Array {
  const builder = backend.beginSnapshot();
  while (!builder.step(3));
  return builder.data;
}

/** Everything a group holds, as bytes and lists: its snapshot, and its whole history, purged or not. */
function image(twin: Twin): { snapshot: Buffer; history: unknown } {
  return { snapshot: Buffer.from(builtSnapshot(twin.backend)), history: twin.backend.changesAfter({ revision: 0, afterKey: "" }, EVERYTHING) };
}

/** The image of a group that holds nothing. */
/** What an empty group over `span` holds. */
function emptyImage(span: KvSpan): { snapshot: Buffer; history: unknown } {
  const memory = new MemoryKvBackend();
  memory.span = span;
  return { snapshot: Buffer.from(new KvStore(memory).snapshot()), history: [] };
}

/** The group's backend reads as its reference's does, and its snapshots are the reference's bytes. */
function checkTwin(twin: Twin): void {
  const { backend, memory, group } = twin;
  const expected = twin.reference.snapshot();
  assert.deepEqual(Buffer.from(builtSnapshot(backend)), Buffer.from(expected), `group ${group}'s built snapshot`);
  assert.deepEqual(Buffer.from(twin.store.snapshot()), Buffer.from(expected), `group ${group}'s store snapshot`);
  assert.deepEqual(Buffer.from(KvStore.restore(builtSnapshot(backend)).snapshot()), Buffer.from(expected), `group ${group}'s snapshot restored in memory`);
  assert.equal(backend.recordCount(), memory.recordCount(), `group ${group}'s record count`);
  assert.deepEqual([...backend.allRecords()], [...memory.allRecords()]);
  for (const prefix of PREFIXES) {
    for (const after of [undefined, "a/1", "c", "é"]) {
      const query = { prefix, limit: 3, ...(after === undefined ? {} : { after }) };
      assert.deepEqual(backend.rangeRecords(query), memory.rangeRecords(query), `group ${group}'s range ${JSON.stringify(query)}`);
    }
  }
  assert.deepEqual([...backend.allSessions()], [...memory.allSessions()]);
  assert.deepEqual([...backend.allLeases()], [...memory.allLeases()]);
  assert.deepEqual(withDefaults(backend.readMeta()), withDefaults(memory.readMeta()));
  for (const key of KEYS) if (holds(twin.span, key)) assert.deepEqual(backend.getRecord(key), memory.getRecord(key));
}

/** The meta with the fields an empty memory backend leaves out. */
function withDefaults(meta: KvMeta): Required<KvMeta> {
  return { appliedIndex: meta.appliedIndex, revision: meta.revision, clockMs: meta.clockMs ?? 0, compactRevision: meta.compactRevision ?? 0, purged: meta.purged ?? { revision: 0, afterKey: "" }, rangeEpoch: meta.rangeEpoch ?? 1, nextRangeId: meta.nextRangeId ?? 0, bornAt: meta.bornAt ?? 0, spanSince: meta.spanSince ?? 0 };
}

function apply(twin: Twin, command: Uint8Array): void {
  const index = twin.reference.applied + 1;
  assert.equal(twin.store.applied + 1, index);
  assert.deepEqual(twin.store.apply(index, command), twin.reference.apply(index, command), `group ${twin.group} answers as its reference`);
}

function keyCommand(twin: Twin, step: Extract<Step, { kind: "key" }>): Uint8Array {
  let request = { clientId: 0, sequence: 0 };
  if (step.client > 0) {
    const clientId = SELF_ASSIGNED_SESSIONS_FROM + step.client;
    const last = twin.sequences.get(clientId) ?? 0;
    const sequence = step.repeat && last > 0 ? last : last + 1;
    twin.sequences.set(clientId, sequence);
    request = { clientId, sequence };
  }
  const value = utf8Encode(`${twin.group}:${step.value}`);
  if (step.op === "delete") return encodeCommand({ op: "delete", request, key: step.key });
  if (step.op === "leased") return encodeCommand({ op: "put", request, key: step.key, value, lease: twin.leases[step.value % Math.max(1, twin.leases.length)] ?? 1 });
  return encodeCommand({ op: "put", request, key: step.key, value });
}

function groupStep(twin: Twin, step: Extract<Step, { kind: "group" }>): void {
  const request = { clientId: 0, sequence: 0 };
  switch (step.op) {
    case "delete-prefix":
      return apply(twin, encodeCommand({ op: "delete-prefix", request, prefix: PREFIXES[1 + (step.number % (PREFIXES.length - 1))] as string }));
    case "lease-grant":
      twin.leases.push(twin.reference.applied + 1);
      return apply(twin, encodeCommand({ op: "lease-grant", request: { ...request, timeMs: T0 }, ttlMs: 1000 + step.number * 100 }));
    case "lease-revoke":
      return apply(twin, encodeCommand({ op: "lease-revoke", request, lease: twin.leases[step.number % Math.max(1, twin.leases.length)] ?? 1 }));
    case "clock":
      return apply(twin, encodeCommand({ op: "clock", request: { ...request, timeMs: T0 + step.number * 200 } }));
    case "compact":
      return apply(twin, encodeCommand({ op: "compact", request, revision: Math.max(1, twin.reference.currentRevision - (step.number % 5)) }));
    case "purge":
      twin.store.purgeHistory(1 + (step.number % 4));
      twin.reference.purgeHistory(1 + (step.number % 4));
      return;
  }
}

/** Runs `change` on one group, checking that every other group's image stays byte for byte the same. */
function othersUnchanged(twins: readonly Twin[], changed: Twin, change: () => void): void {
  const before = twins.filter((twin) => twin !== changed).map((twin) => [twin, image(twin)] as const);
  change();
  for (const [twin, was] of before) assert.deepEqual(image(twin), was, `group ${twin.group} is untouched by what group ${changed.group} did`);
}

function reopenAll(environment: LmdbKvEnvironment, twins: readonly Twin[]): void {
  assert.deepEqual(
    environment.groups(),
    [...twins].sort((a, b) => a.group - b.group).map(({ group, span }) => ({ group, span })),
    "the environment lists its groups",
  );
  for (const twin of twins) {
    twin.backend = environment.group(twin.group, twin.span);
    twin.store = KvStore.open(twin.backend);
  }
}

test("groups with disjoint spans in one environment behave each as its own memory store, through clears, drops and reopens", async () => {
  const path = mkdtempSync(join(tmpdir(), "synod-kv-env-iso-"));
  try {
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(fc.constantFrom(...CUTS), { minLength: 1, maxLength: 3 }), fc.shuffledSubarray(GROUP_IDS, { minLength: 4, maxLength: 4 }), fc.array(stepArbitrary, { minLength: 1, maxLength: 60, size: "max" }), async (cuts, ids, steps) => {
        rmSync(path, { recursive: true, force: true });
        let environment = LmdbKvEnvironment.open({ path });
        const twins: Twin[] = spansOf(cuts).map((span, i) => {
          const group = ids[i] as number;
          const backend = environment.group(group, span);
          // The same span: both refuse a command outside it when it applies (range-mismatch).
          const memory = new MemoryKvBackend();
          memory.span = span;
          return { group, span, backend, store: KvStore.open(backend), memory, reference: KvStore.open(memory), sequences: new Map(), leases: [] };
        });
        try {
          for (const step of steps) {
            if (step.kind === "key") {
              const twin = ownerOf(twins, step.key);
              apply(twin, keyCommand(twin, step));
              continue;
            }
            if (step.kind === "reopen") {
              await environment.close();
              environment = LmdbKvEnvironment.open({ path });
              assert.equal(environment.trusted, true);
              reopenAll(environment, twins);
              continue;
            }
            const twin = twins[step.at % twins.length] as Twin;
            if (step.kind === "group") groupStep(twin, step);
            else if (step.kind === "snapshot") checkTwin(twin);
            else if (step.kind === "clear") {
              othersUnchanged(twins, twin, () => twin.backend.transaction(() => twin.backend.clear()));
              twin.memory.transaction(() => twin.memory.clear());
              twin.store = KvStore.open(twin.backend);
              twin.reference = KvStore.open(twin.memory);
              twin.leases.length = 0;
              assert.deepEqual(image(twin), emptyImage(twin.span), `group ${twin.group} holds nothing once cleared`);
            } else {
              othersUnchanged(twins, twin, () => environment.dropGroup(twin.group));
              assert.equal(environment.spanOf(twin.group), undefined, "a dropped group is no longer stored");
              assert.throws(() => twin.backend.transaction(() => 0), AssertionError, "and its backend is closed");
              twin.backend = environment.group(twin.group, twin.span);
              twin.store = KvStore.open(twin.backend);
              twin.memory = new MemoryKvBackend();
              twin.memory.span = twin.span;
              twin.reference = KvStore.open(twin.memory);
              twin.sequences.clear();
              twin.leases.length = 0;
              assert.deepEqual(image(twin), emptyImage(twin.span), `group ${twin.group} is new once dropped`);
            }
          }
          for (const twin of twins) {
            checkTwin(twin);
            for (const key of KEYS) if (ownerOf(twins, key) !== twin) assert.throws(() => twin.backend.getRecord(key), AssertionError, "a key of another group's span");
          }
          await environment.close();
          environment = LmdbKvEnvironment.open({ path });
          reopenAll(environment, twins);
          for (const twin of twins) checkTwin(twin);
        } finally {
          await environment.close();
        }
      }),
      { numRuns: 40 },
    );
  } finally {
    rmSync(path, { recursive: true, force: true });
  }
});
