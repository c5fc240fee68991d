// `npm test`: every *.test.js under dist/ and examples/, in two phases. First the files that
// only compute (engines, simulator, checkers, storage: nothing timed), two at a time; then the
// files that start real node processes and time what they do (failover within 3 s, a transfer
// within 2 s), one at a time. Two of those at a time, or one beside a simulation, starve the
// clusters' heartbeats on two cores: CI runs then failed on needless elections and reads
// that timed out. Arguments (--test-name-pattern=REGEX, --test-timeout=MS, --test-only) are
// passed to both runs.
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

function testFiles(dir) {
  const found = [];
  for (const name of readdirSync(dir)) {
    if (name === "node_modules") continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) found.push(...testFiles(path));
    else if (name.endsWith(".test.js")) found.push(relative(root, path));
  }
  return found;
}

/**
 * Files that start no node process and time nothing: the engines, the simulator and the
 * checkers, and the storage, codecs and pure pieces of the runtime tested in-process.
 */
const COMPUTE_ONLY = [
  /^dist\/(core|sim|bench|fuzz)\//,
  /^dist\/cli\/(cli|main|readme-sim|sim-groups|sim-module|sim-soak)\.test\.js$/,
  /^dist\/purity\.test\.js$/,
  /^dist\/runtime\/(storage|tls)\//,
  /^dist\/runtime\/transport\/(codec|handshake|log-limiter)\.test\.js$/,
  /^dist\/runtime\/proxy\/route\.test\.js$/,
  /^dist\/runtime\/server\/(admission|dashboard-feed|data-dir|range-forward|cross-range-txn)\.test\.js$/,
  /^examples\/lock-service\/sim\.test\.js$/,
];

/**
 * The compute files that take longest (7 to 40 s in CI), started first. In name order the
 * longest could start last and run alone while the other worker idles; started first, the
 * many short files fill in around them and both workers finish at about the same time.
 */
const LONGEST_FIRST = [
  "dist/sim/txn-sim.test.js",
  "dist/sim/scenarios.test.js",
  "dist/core/raft/raft-sim.test.js",
  "dist/core/paxos/paxos-sim.test.js",
  "dist/cli/readme-sim.test.js",
  "dist/sim/simulation.test.js",
  "dist/cli/cli.test.js",
  "dist/sim/quiescence-sim.test.js",
  "dist/sim/split-sim.test.js",
  "dist/sim/node-cost.test.js",
  "dist/sim/lock-sim.test.js",
  "dist/runtime/storage/log-store.conformance.test.js",
  "dist/sim/multi-group.test.js",
  "examples/lock-service/sim.test.js",
  "dist/fuzz/fuzz.test.js",
  "dist/sim/watch-sim.test.js",
];

const files = [...testFiles(join(root, "dist")), ...testFiles(join(root, "examples"))].sort();
const rank = (file) => (LONGEST_FIRST.includes(file) ? LONGEST_FIRST.indexOf(file) : LONGEST_FIRST.length);
const compute = files.filter((file) => COMPUTE_ONLY.some((pattern) => pattern.test(file))).sort((a, b) => rank(a) - rank(b));
const processes = files.filter((file) => !compute.includes(file));
// `--list`: print each file with its phase (for scripts/time-test-files.sh), run nothing.
if (process.argv[2] === "--list") {
  for (const file of compute) process.stdout.write(`compute ${file}\n`);
  for (const file of processes) process.stdout.write(`processes ${file}\n`);
  process.exit(0);
}
let failed = false;
for (const [what, concurrency, list] of [
  ["only compute", 2, compute],
  ["start real processes", 1, processes],
]) {
  process.stdout.write(`\n# npm test: ${list.length} files that ${what}, ${concurrency === 1 ? "one" : concurrency} at a time\n`);
  // The compute files in LONGEST_FIRST's order (`node --test` would sort them by name).
  const args =
    list === compute
      ? [join(root, "scripts", "run-in-order.js"), String(concurrency), ...process.argv.slice(2), "--", ...list]
      : ["--test", `--test-concurrency=${concurrency}`, "--test-reporter=spec", ...process.argv.slice(2), ...list];
  const run = spawnSync(process.execPath, args, { cwd: root, stdio: "inherit" });
  if (run.status !== 0) failed = true;
}
process.exit(failed ? 1 : 0);
