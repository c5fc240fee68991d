// `npm run bench:checker`: how long the linearizability checker takes on a 10,000-operation
// history over 100 keys from 10 clients. A benchmark prints numbers; it asserts nothing.
import { checkLinearizability } from "../sim/check/linearizability.js";
import { generateLinearizableHistory } from "./history-generator.js";

const cases = [
  { name: "10,000 ops, 100 keys, 10 clients, all answered", operations: 10_000, keys: 100, clients: 10, timeoutShare: 0 },
  { name: "10,000 ops, 100 keys, 10 clients, 2% of writes timed out", operations: 10_000, keys: 100, clients: 10, timeoutShare: 0.02 },
  { name: "10,000 ops, 10 keys, 10 clients, all answered", operations: 10_000, keys: 10, clients: 10, timeoutShare: 0 },
];

for (const c of cases) {
  const history = generateLinearizableHistory({ ...c, seed: 42 });
  const rounds = 5;
  const times: number[] = [];
  let verdict = "";
  for (let round = 0; round < rounds; round++) {
    const start = process.hrtime.bigint();
    const result = checkLinearizability(history);
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
    verdict = result.verdict;
  }
  times.sort((a, b) => a - b);
  console.log(`${c.name}: ${verdict}; median ${times[Math.floor(rounds / 2)]?.toFixed(1)} ms, best ${times[0]?.toFixed(1)} ms, worst ${times[rounds - 1]?.toFixed(1)} ms (${rounds} rounds)`);
}
