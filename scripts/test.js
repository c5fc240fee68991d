// `npm test`: every *.test.js under dist/ and examples/, in two lanes. The files that start
// real node processes and time what they do (failover within 3 s, a transfer within 2 s) run
// one at a time, at the normal priority. Two of those at a time, or one beside a simulation
// at the same priority, starve the clusters' heartbeats on two cores: CI runs then failed on
// needless elections and reads that timed out. The other lane holds the checks that only
// compute (the purity build, the examples' types, the linter; `pretest` only builds) and
// then the test files that only compute (engines, simulator, checkers, storage: nothing
// timed), two at a time.
//
// By default the lanes run side by side, the compute lane at the idle scheduling class
// (SCHED_IDLE, else nice 19): it gets only the CPU the clusters leave unused (most of it)
// and the kernel takes it back the moment a node wakes, so npm test takes about as long as
// the real-process lane alone (7.7 minutes on two cores, against 11 one after the other).
// It was not the default while nemesis/bank.test.js failed beside an idle-class load (3
// runs in 6): audits that read a range whose leader was killed as balances of 0, and the
// SDK calling aborted a transfer whose outcome was unknown, both fixed since (6a5621f,
// 4e10c30). SYNOD_TEST_OVERLAP=0 runs the lanes one after the other: checks and compute
// files first (about half a minute and 4 minutes), then the real-process files.
//
// Arguments (--test-name-pattern=REGEX, --test-timeout=MS, --test-only) are passed to both
// test runs. Overlapped, the compute lane's report is printed whole once both lanes have
// ended, so the two reports do not interleave; a check that passes prints nothing.
import { Buffer } from "node:buffer";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { setPriority } from "node:os";
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
  /^dist\/(core|sim|fuzz)\//,
  // Not kv-load.test.js: it bounds how long a 200 ms run takes, and 500 operations must end
  // within 5 s, which the idle priority the compute files run at cannot promise.
  /^dist\/bench\/histogram\.test\.js$/,
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
const computeArgs = [join(root, "scripts", "run-in-order.js"), "2", ...process.argv.slice(2), "--", ...compute];
const processArgs = ["--test", "--test-concurrency=1", "--test-reporter=spec", ...process.argv.slice(2), ...processes];
const heading = (count, what, howMany) => `\n# npm test: ${count} files that ${what}, ${howMany} at a time\n`;

let chrtIdle = null;
/** Whether `chrt --idle 0` runs here: it exists and the system lets a process take SCHED_IDLE (a sandbox may refuse). */
function chrtIdleWorks() {
  if (chrtIdle === null) chrtIdle = process.platform === "linux" && existsSync("/usr/bin/chrt") && spawnSync("/usr/bin/chrt", ["--idle", "0", "true"], { stdio: "ignore" }).status === 0;
  return chrtIdle;
}

/** Runs `node ARGS` from the repository's root; resolves with its exit status (null if killed). */
function node(args, { idle = false, capture = false } = {}) {
  // chrt puts the process (and every process it starts) in SCHED_IDLE; without it (or where
  // the system refuses it), nice 19.
  const chrt = idle && chrtIdleWorks();
  const [command, commandArgs] = chrt ? ["/usr/bin/chrt", ["--idle", "0", process.execPath, ...args]] : [process.execPath, args];
  const child = spawn(command, commandArgs, { cwd: root, stdio: ["ignore", capture ? "pipe" : "inherit", capture ? "pipe" : "inherit"] });
  if (idle && !chrt) {
    try {
      setPriority(child.pid, 19);
    } catch {
      // Not permitted here: it runs at the normal priority.
    }
  }
  const output = [];
  child.stdout?.on("data", (chunk) => output.push(chunk));
  child.stderr?.on("data", (chunk) => output.push(chunk));
  return new Promise((resolve) => child.once("close", (status) => resolve({ status, output: Buffer.concat(output) })));
}

/**
 * The checks `pretest` ran before any test, beside the tests now: they only compute, and on
 * two cores they held the tests back about half a minute. The purity build (core/ and sim/
 * with the ECMAScript library only), the examples type-checked against the built package,
 * and the linter.
 */
const CHECKS = [
  ["tsc -p tsconfig.pure.json", [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.pure.json"]],
  ["tsc -p examples/tsconfig.json", [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", join("examples", "tsconfig.json")]],
  ["eslint .", [join(root, "node_modules", "eslint", "bin", "eslint.js"), "."]],
];

/** The checks, then the compute files; every result, in order. Only the checks' output is kept when `streamCompute`. */
async function computeLane(options, streamCompute = false) {
  const results = [];
  for (const [name, args] of CHECKS) results.push({ name, ...(await node(args, { ...options, capture: true })) });
  if (streamCompute) {
    report(results);
    process.stdout.write(heading(compute.length, "only compute", 2));
  }
  results.push({ name: "compute", ...(await node(computeArgs, { ...options, capture: !streamCompute })) });
  return results;
}

/** What a lane printed, under headings; checks that passed print nothing, as under pretest. */
function report(results) {
  for (const result of results) {
    if (result.name === "compute") {
      process.stdout.write(heading(compute.length, "only compute", 2));
      process.stdout.write(result.output);
    } else if (result.status !== 0) {
      process.stdout.write(`\n# npm test: ${result.name} failed (exit ${result.status})\n`);
      process.stdout.write(result.output);
    }
  }
}

let results;
if (["0", "false", "no"].includes((process.env["SYNOD_TEST_OVERLAP"] ?? "").toLowerCase())) {
  const computed = await computeLane({}, true);
  process.stdout.write(heading(processes.length, "start real processes", "one"));
  results = [...computed, await node(processArgs)];
} else {
  process.stdout.write(heading(processes.length, "start real processes", "one"));
  process.stdout.write(`# (beside them, at the idle priority: ${CHECKS.map(([name]) => name).join(", ")}, then ${compute.length} files that only compute, two at a time; reported at the end)\n`);
  const startedMs = Date.now();
  const seconds = () => ((Date.now() - startedMs) / 1000).toFixed(0);
  const computing = computeLane({ idle: true }).then((lane) => ({ lane, seconds: seconds() }));
  const started = await node(processArgs);
  const processSeconds = seconds();
  const computed = await computing;
  report(computed.lane);
  process.stdout.write(`\n# npm test: the real-process files took ${processSeconds} s; beside them, the checks and the compute files ${computed.seconds} s\n`);
  results = [...computed.lane, started];
}
// exitCode, not exit(): the reports written above go out in full first.
process.exitCode = results.every((result) => result.status === 0) ? 0 : 1;
