// The KV backend conformance suites against one group of a shared LMDB environment: group 7,
// over a bounded span holding every key the suites write, while two neighbours write their
// own spans of the same environment between its transactions (group 3 below it, group 0
// above it). The neighbours' states are checked against memory stores at every reopen and
// at the end: whatever the suites do to group 7 (clear, restore, aborted transactions,
// reopening) must leave them as they were.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { utf8Encode } from "../../core/common/utf8.js";
import { MemoryKvBackend, type KvBackend } from "../../core/kv/backend.js";
import { encodeCommand } from "../../core/kv/command.js";
import { KvStore, SELF_ASSIGNED_SESSIONS_FROM } from "../../core/kv/store.js";
import { kvBackendConformance, type BackendSubject } from "./kv-backend-conformance.test-util.js";
import { kvHistoryConformance } from "./kv-history-conformance.test-util.js";
import type { LmdbKvBackend } from "./kv-lmdb.js";
import { LmdbKvEnvironment } from "./kv-lmdb-env.js";
import type { KvSpan } from "./kv-lmdb-groups.js";

/** Every key the suites write to a record is in here: "a" up to, not including, the last code point. */
const UNDER_TEST: KvSpan = { start: "a", end: "\u{10FFFF}" };
const NEIGHBOURS: readonly { readonly group: number; readonly span: KvSpan; readonly keys: readonly string[] }[] = [
  { group: 3, span: { start: "", end: "a" }, keys: ["\u0001", "0", "A/1", "Z", "`"] },
  { group: 0, span: { start: "\u{10FFFF}", end: null }, keys: ["\u{10FFFF}", "\u{10FFFF}a", "\u{10FFFF}😀"] },
];
const T0 = Date.UTC(2026, 11, 1);

/** A neighbour group: its store in the environment, and a memory store given the same commands. */
class Neighbour {
  private store: KvStore;
  private readonly reference: KvStore;
  private index = 0;

  constructor(
    private readonly group: number,
    private readonly span: KvSpan,
    private readonly keys: readonly string[],
    environment: LmdbKvEnvironment,
  ) {
    this.store = KvStore.open(environment.group(group, span));
    const memory = new MemoryKvBackend();
    memory.span = span;
    this.reference = new KvStore(memory);
  }

  /** One more command of a fixed sequence: puts, deletes, sessions, a lease and its keys, a compaction. */
  step(): void {
    const i = ++this.index;
    const key = this.keys[i % this.keys.length] as string;
    const request = i % 3 === 0 ? { clientId: SELF_ASSIGNED_SESSIONS_FROM + (i % 4), sequence: i } : { clientId: 0, sequence: 0 };
    const command =
      i % 17 === 1 ? encodeCommand({ op: "lease-grant", request: { ...request, timeMs: T0 }, ttlMs: 60_000 })
      : i % 17 === 5 ? encodeCommand({ op: "put", request, key, value: utf8Encode("leased"), lease: i - 4 })
      : i % 7 === 0 ? encodeCommand({ op: "delete", request, key })
      : i % 29 === 0 ? encodeCommand({ op: "compact", request, revision: Math.max(1, this.reference.currentRevision - 3) })
      : encodeCommand({ op: "put", request, key, value: utf8Encode(`${this.group}:${i}`) });
    assert.deepEqual(this.store.apply(i, command), this.reference.apply(i, command));
    if (i % 11 === 0) this.store.purgeHistory(2);
  }

  reopen(environment: LmdbKvEnvironment): void {
    this.store = KvStore.open(environment.group(this.group, this.span));
    this.check();
  }

  check(): void {
    assert.deepEqual(this.store.snapshot(), this.reference.snapshot(), `neighbour group ${this.group} as its memory twin`);
  }

  /** How many commands it applied. */
  get steps(): number {
    return this.index;
  }
}

interface Shared {
  environment: LmdbKvEnvironment;
  readonly path: string;
  readonly neighbours: Neighbour[];
}

const shared = new WeakMap<KvBackend, Shared>();

/** Group 7's backend, its transactions each preceded by a step of every neighbour. */
function interleaved(backend: LmdbKvBackend, context: Shared): KvBackend {
  let inside = false;
  const proxy = new Proxy(backend, {
    get(target, property) {
      if (property === "transaction") {
        return <T>(fn: () => T): T => {
          // Not inside: a nested transaction is the suite's own assertion to provoke.
          if (!inside) for (const neighbour of context.neighbours) neighbour.step();
          const outer = !inside;
          inside = true;
          try {
            return target.transaction(fn);
          } finally {
            if (outer) inside = false;
          }
        };
      }
      const value = Reflect.get(target, property, target) as unknown;
      return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
  shared.set(proxy, context);
  return proxy;
}

const subject: BackendSubject = {
  name: "LMDB, group 7 of a shared environment, over a bounded span, between neighbours",
  span: UNDER_TEST,
  create: () => {
    const path = mkdtempSync(join(tmpdir(), "synod-kv-env-"));
    const environment = LmdbKvEnvironment.open({ path });
    const neighbours = NEIGHBOURS.map(({ group, span, keys }) => new Neighbour(group, span, keys, environment));
    return interleaved(environment.group(7, UNDER_TEST), { environment, path, neighbours });
  },
  reopen: async (backend) => {
    const context = shared.get(backend) as Shared;
    await context.environment.close();
    context.environment = LmdbKvEnvironment.open({ path: context.path });
    if (!context.environment.trusted) throw new Error(`a cleanly closed environment was not trusted: ${context.environment.reason}`);
    for (const neighbour of context.neighbours) neighbour.reopen(context.environment);
    return interleaved(context.environment.group(7, UNDER_TEST), context);
  },
  dispose: async (backend) => {
    const context = shared.get(backend) as Shared;
    try {
      for (const neighbour of context.neighbours) {
        neighbour.check();
        assert.ok(neighbour.steps >= 10, `the neighbours wrote all along (${neighbour.steps} commands)`);
      }
    } finally {
      await context.environment.destroy();
      rmSync(context.path, { recursive: true, force: true });
    }
  },
};

kvBackendConformance(subject);
kvHistoryConformance(subject);
