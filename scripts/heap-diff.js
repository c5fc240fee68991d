// What a range costs in a node's heap: compares two heap snapshots of a node, one with 1
// range and one with N (same cluster size, both idle), and prints the difference per range
// by kind of object (V8's type and constructor name), largest first. Take the snapshots
// with `node --heapsnapshot-signal=SIGUSR2 bin/synod.js node ... --shards N` and
// `kill -USR2 PID` once every range is quiet (docs/benchmarks.md, "Idle cost of many ranges").
//
//   node scripts/heap-diff.js one-range.heapsnapshot n-ranges.heapsnapshot N [rows]
//
// Self sizes only (what each object itself takes, not what it keeps alive): summed over a
// kind, they say which objects there are one or more of per range. "(code)" is mostly code
// V8 compiled while the ranges started, and does not grow with more ranges.
import { readFileSync } from "node:fs";

function totals(path) {
  const snapshot = JSON.parse(readFileSync(path, "utf8"));
  const meta = snapshot.snapshot.meta;
  const fields = meta.node_fields.length;
  const types = meta.node_types[0];
  const at = { type: meta.node_fields.indexOf("type"), name: meta.node_fields.indexOf("name"), size: meta.node_fields.indexOf("self_size") };
  const byKind = new Map();
  let bytes = 0;
  for (let i = 0; i < snapshot.nodes.length; i += fields) {
    const type = types[snapshot.nodes[i + at.type]];
    const name = type === "object" || type === "native" ? snapshot.strings[snapshot.nodes[i + at.name]] : "";
    const kind = name === "" ? `(${type})` : `${name} (${type})`;
    const size = snapshot.nodes[i + at.size];
    const entry = byKind.get(kind) ?? { count: 0, bytes: 0 };
    entry.count += 1;
    entry.bytes += size;
    byKind.set(kind, entry);
    bytes += size;
  }
  return { byKind, bytes };
}

const [baselinePath, measuredPath, rangesText, rowsText = "30"] = process.argv.slice(2);
const ranges = Number(rangesText);
if (baselinePath === undefined || measuredPath === undefined || !Number.isSafeInteger(ranges) || ranges < 2) {
  console.error("usage: node scripts/heap-diff.js one-range.heapsnapshot n-ranges.heapsnapshot N [rows]");
  process.exit(2);
}
const baseline = totals(baselinePath);
const measured = totals(measuredPath);
const extra = ranges - 1;
console.log(`heap ${(baseline.bytes / 1e6).toFixed(1)} MB -> ${(measured.bytes / 1e6).toFixed(1)} MB: ${((measured.bytes - baseline.bytes) / extra).toFixed(0)} bytes per range`);
const rows = [...measured.byKind].map(([kind, { count, bytes }]) => {
  const before = baseline.byKind.get(kind) ?? { count: 0, bytes: 0 };
  return { kind, count: (count - before.count) / extra, bytes: (bytes - before.bytes) / extra };
});
rows.sort((a, b) => b.bytes - a.bytes);
for (const row of rows.slice(0, Number(rowsText))) console.log(`${row.bytes.toFixed(0).padStart(7)} B ${row.count.toFixed(2).padStart(7)} objects  ${row.kind}`);
