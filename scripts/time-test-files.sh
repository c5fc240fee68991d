#!/bin/bash
# Times each test file that `npm test` runs one at a time (the real-process phase), alone,
# and prints them slowest first: where the CI minutes go. Run after `npm run build`.
# Usage: scripts/time-test-files.sh
set -u
cd "$(dirname "$0")/.."
files=$(node scripts/test.js --list | awk '$1 == "processes" {print $2}')
out=$(mktemp)
for file in $files; do
  start=$(date +%s%N)
  node --test "$file" > /dev/null 2>&1
  rc=$?
  end=$(date +%s%N)
  printf "%s s  %s%s\n" "$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%7.1f", (b - a) / 1e9 }')" "$file" "$([ $rc -ne 0 ] && echo "  (failed)")" >> "$out"
done
sort -rn "$out"
rm -f "$out"
