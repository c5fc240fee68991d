// `npm test`: every *.test.js under dist/ and examples/, in two phases. First the files that
// only compute (engines, simulator, checkers, storage: nothing timed), two at a time; then the
// files that start real node processes and time what they do (failover within 3 s, a transfer
// within 2 s), one at a time. Two of those at a time, or one beside a simulation, starve the
// clusters' heartbeats on two cores: CI runs then failed on needless elections and reads
// that timed out. Arguments are passed to both `node --test` runs.
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
  /^dist\/cli\/(main|readme-sim|sim-groups|sim-module|sim-soak)\.test\.js$/,
  /^dist\/purity\.test\.js$/,
  /^dist\/runtime\/(storage|tls)\//,
  /^dist\/runtime\/transport\/(codec|handshake|log-limiter)\.test\.js$/,
  /^dist\/runtime\/proxy\/route\.test\.js$/,
  /^dist\/runtime\/server\/(admission|dashboard-feed|data-dir)\.test\.js$/,
];

const files = [...testFiles(join(root, "dist")), ...testFiles(join(root, "examples"))].sort();
const compute = files.filter((file) => COMPUTE_ONLY.some((pattern) => pattern.test(file)));
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
  const run = spawnSync(process.execPath, ["--test", `--test-concurrency=${concurrency}`, "--test-reporter=spec", ...process.argv.slice(2), ...list], { cwd: root, stdio: "inherit" });
  if (run.status !== 0) failed = true;
}
process.exit(failed ? 1 : 0);
