#!/bin/bash
# Throughput and latency of a local 3-node cluster with each number of ranges given
# (`--shards`), under the same load: `synod bench --spread-keys` (keys spread over every
# range) to the first range's leader for DURATION (default 10s) at CONCURRENCY (default 64). Each run
# starts a fresh cluster on ports 41501-41503 (peers 41601-41603) in a temporary directory.
# TARGET=ranges sends each write to its range's leader instead (synod bench --target ranges).
# KEEP=1 keeps each cluster's directory (its nodes' logs).
# Usage: scripts/shard-bench.sh [DURATION] [CONCURRENCY] SHARDS...   e.g. scripts/shard-bench.sh 10s 64 1 8 64
set -u
cd "$(dirname "$0")/.."
duration=${1:-10s}
concurrency=${2:-64}
shift 2 2>/dev/null
counts=("$@")
[ ${#counts[@]} -eq 0 ] && counts=(1 8)
for shards in "${counts[@]}"; do
  dir=$(mktemp -d /tmp/synod-shard-bench-XXXX)
  node bin/synod.js cluster --shards "$shards" --base-port 41501 --data-dir "$dir" > "$dir/cluster.out" 2>&1 &
  supervisor=$!
  for _ in $(seq 1 120); do curl -sf http://127.0.0.1:41501/readyz > /dev/null && break; sleep 0.5; done
  sleep 2
  result=$(node bin/synod.js bench --endpoints http://127.0.0.1:41501,http://127.0.0.1:41502,http://127.0.0.1:41503 --spread-keys --target "${TARGET:-leader}" --duration "$duration" --concurrency "$concurrency" --json)
  echo "shards $shards, target ${TARGET:-leader}: $result"
  kill "$supervisor"
  wait "$supervisor" 2>/dev/null
  if [ -n "${KEEP:-}" ]; then echo "  cluster logs kept in $dir"; else rm -rf "$dir"; fi
done
