#!/bin/bash
# What an idle local cluster costs: starts `synod cluster` (3 nodes) on ports 41301-41303
# (peers 41401-41403) in a temporary directory, lets it settle, then reports each node's CPU
# (% of one core, from /proc over SECONDS seconds, default 30) and resident memory, with
# SHARDS ranges (default 1: one consensus group; `--shards`). Linux only.
# Usage: scripts/idle-cost.sh [SECONDS] [SHARDS]
set -u
cd "$(dirname "$0")/.."
window=${1:-30}
shards=${2:-1}
dir=$(mktemp -d /tmp/synod-idle-XXXX)
node bin/synod.js cluster --shards "$shards" --base-port 41301 --data-dir "$dir" > "$dir/cluster.out" 2>&1 &
supervisor=$!
sleep 12
pids=$(grep -oE "pid [0-9]+" "$dir/cluster.out" | awk '{print $2}')
ticks=$(getconf CLK_TCK)
declare -A before
for pid in $pids; do before[$pid]=$(awk '{print $14 + $15}' "/proc/$pid/stat"); done
sleep "$window"
for pid in $pids; do
  after=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  awk -v s="$shards" -v p="$pid" -v a="${before[$pid]}" -v b="$after" -v t="$ticks" -v w="$window" -v r="$rss" 'BEGIN { printf "shards %s, node pid %s: cpu %.2f%% of one core, rss %.0f MB\n", s, p, (b - a) * 100 / t / w, r / 1024 }'
done
kill "$supervisor"
wait "$supervisor" 2>/dev/null
rm -rf "$dir"
