// `node scripts/run-in-order.js CONCURRENCY [OPTION...] -- FILE...`: node's test runner over
// the files in the order given, CONCURRENCY at a time, reported as `node --test
// --test-reporter=spec` reports; exits 1 if a test failed. `node --test FILE...` sorts the
// files by name, and scripts/test.js wants the longest compute files to start first.
// OPTIONs are those of `node --test` that npm test passes on: --test-name-pattern=REGEX
// (or --test-name-pattern REGEX, repeatable), --test-timeout=MS and --test-only.
import { run } from "node:test";
import { spec } from "node:test/reporters";

const args = process.argv.slice(2);
const concurrency = Number(args.shift());
const end = args.indexOf("--");
const options = end === -1 ? [] : args.slice(0, end);
const files = end === -1 ? args : args.slice(end + 1);
const testNamePatterns = [];
let timeout = Infinity;
let only = false;
for (let i = 0; i < options.length; i++) {
  const [flag, inline] = (options[i] ?? "").split(/=(.*)/s);
  const value = () => inline ?? options[++i];
  if (flag === "--test-name-pattern") testNamePatterns.push(value());
  else if (flag === "--test-timeout") timeout = Number(value());
  else if (flag === "--test-only") only = true;
  else {
    process.stderr.write(`npm test: ${options[i]} is not an option the compute phase passes on (--test-name-pattern, --test-timeout, --test-only)\n`);
    process.exit(2);
  }
}
const stream = run({ files, concurrency, timeout, only, ...(testNamePatterns.length === 0 ? {} : { testNamePatterns }) });
stream.on("test:fail", () => {
  process.exitCode = 1;
});
stream.compose(spec).pipe(process.stdout);
