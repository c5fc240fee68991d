#!/bin/bash
# What a split costs (docs/sharding.md, "What a split costs"), after `npm run build`:
# 1. In-process: the `split` command's apply over LMDB, for a range of KEYS keys (default
#    300,000, 100-byte values), half of them moving.
# 2. A local 3-node cluster (`--shards 2 --split-keys 0`, ports 41701-41703, peers
#    41801-41803, a temporary directory): KEYS_CLUSTER keys (default 100,000) written into
#    range 1 with `synod bench --max-ops`, then `POST /v1/shards/1/split {}` timed with curl;
#    then range 2's split while `synod bench` writes for 8 s, with the slowest write seen.
# Usage: scripts/split-cost.sh [KEYS] [KEYS_CLUSTER]    (npm run bench:split)
set -u
cd "$(dirname "$0")/.."
keys=${1:-300000}
cluster_keys=${2:-100000}

node --input-type=module - "$keys" <<'EOF'
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
const { LmdbKvEnvironment } = await import(join(process.cwd(), "dist/runtime/storage/kv-lmdb-env.js"));
const { KvStore } = await import(join(process.cwd(), "dist/core/kv/store.js"));
const { encodeCommand } = await import(join(process.cwd(), "dist/core/kv/command.js"));
const keys = Number(process.argv[2]);
const path = mkdtempSync(join(tmpdir(), "synod-split-cost-"));
const environment = LmdbKvEnvironment.open({ path });
const store = KvStore.open(environment.group(1, { start: "", end: null }));
store.setSplitHost({ parent: 1, prepare: () => undefined, born: () => undefined });
const request = { clientId: 0, sequence: 0, timeMs: 1000 };
const value = new Uint8Array(100).fill(97);
const key = (i) => `k${String(i).padStart(9, "0")}`;
for (let i = 0; i < keys; i += 128) {
  const success = [];
  for (let j = i; j < Math.min(keys, i + 128); j++) success.push({ op: "put", key: key(j), value });
  store.apply(store.applied + 1, encodeCommand({ op: "txn", request, compares: [], success, failure: [] }));
}
let started = performance.now();
const middle = store.middleKey?.() ?? key(Math.floor(keys / 2));
const middleMs = performance.now() - started;
started = performance.now();
const applied = store.apply(store.applied + 1, encodeCommand({ op: "split", request, at: middle, child: 2 }));
const applyMs = performance.now() - started;
console.log(JSON.stringify({ inProcess: { keys, moved: keys - Math.floor(keys / 2), middleKeyMs: +middleMs.toFixed(1), splitApplyMs: +applyMs.toFixed(1), result: applied.result.op } }));
await environment.close();
rmSync(path, { recursive: true, force: true });
EOF

dir=$(mktemp -d /tmp/synod-split-cost-XXXX)
endpoints=http://127.0.0.1:41701,http://127.0.0.1:41702,http://127.0.0.1:41703
node bin/synod.js cluster --shards 2 --split-keys 0 --base-port 41701 --peer-base-port 41801 --data-dir "$dir" > "$dir/cluster.out" 2>&1 &
supervisor=$!
for _ in $(seq 1 120); do curl -sf http://127.0.0.1:41701/readyz > /dev/null && break; sleep 0.5; done
sleep 2
# bench's keys ("bench/...") sort after "U", the cut of two ranges: every one goes to range 1.
node bin/synod.js bench --endpoints "$endpoints" --max-ops "$cluster_keys" --duration 600s --concurrency 32 --target ranges --json > "$dir/fill.json"
split=$(curl -s -o "$dir/split.json" -w '{"status":%{http_code},"seconds":%{time_total}}' -X POST -H 'content-type: application/json' -d '{}' http://127.0.0.1:41702/v1/shards/1/split)
echo "{\"cluster\":{\"keys\":$cluster_keys,\"split\":$split}}"
sleep 3
node bin/synod.js bench --endpoints "$endpoints" --duration 8s --concurrency 16 --target ranges --json > "$dir/load.json" &
bench=$!
sleep 3
loaded=$(curl -s -o /dev/null -w '{"status":%{http_code},"seconds":%{time_total}}' -X POST -H 'content-type: application/json' -d '{}' http://127.0.0.1:41702/v1/shards/2/split)
wait "$bench"
echo "{\"underLoad\":{\"split\":$loaded,\"bench\":$(cat "$dir/load.json")}}"
kill "$supervisor"
wait "$supervisor" 2>/dev/null
rm -rf "$dir"
