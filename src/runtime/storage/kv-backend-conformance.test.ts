// The KV backend conformance suite against both backends: memory (the reference, and the
// simulator's) and LMDB (the runtime's).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MemoryKvBackend, type KvBackend } from "../../core/kv/backend.js";
import { kvBackendConformance, type BackendSubject } from "./kv-backend-conformance.test-util.js";
import { kvHistoryConformance } from "./kv-history-conformance.test-util.js";
import { LmdbKvBackend } from "./kv-lmdb.js";

const subjects: BackendSubject[] = [];

subjects.push({
  name: "memory",
  create: () => new MemoryKvBackend(),
  dispose: async () => {},
});

subjects.push({
  name: "LMDB",
  create: () => LmdbKvBackend.open({ path: mkdtempSync(join(tmpdir(), "synod-kv-")) }).backend,
  reopen: async (backend: KvBackend) => {
    const lmdb = backend as LmdbKvBackend;
    await lmdb.close();
    const opened = LmdbKvBackend.open({ path: lmdb.path });
    if (!opened.trusted) throw new Error(`a cleanly closed store was not trusted: ${opened.reason}`);
    return opened.backend;
  },
  dispose: async (backend: KvBackend) => {
    const lmdb = backend as LmdbKvBackend;
    await lmdb.destroy();
    rmSync(lmdb.path, { recursive: true, force: true });
  },
});

for (const subject of subjects) {
  kvBackendConformance(subject);
  kvHistoryConformance(subject);
}
