// The README's simulator examples are real runs, and this test keeps them so: it runs the
// commands of the "Simulate" section and fails when what they print or do drifts from what
// the README shows (issue 13, item 14). To update an example, run its command and paste the
// output; `...` on a line of its own stands for lines left out.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { PROTOCOLS } from "../sim/protocols.js";
import { SCENARIO_NAMES } from "../sim/scenarios.js";
import { runSimulation } from "../sim/simulation.js";

const root = fileURLToPath(new URL("../../", import.meta.url));
const bin = join(root, "bin", "synod.js");
const readme = readFileSync(join(root, "README.md"), "utf8");
const packageScripts = (JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { scripts: Record<string, string> }).scripts;

/** The "Simulate" section, up to the next top-level heading. */
function simulateSection(): string {
  const start = readme.indexOf("\n## Simulate\n");
  assert.ok(start >= 0, "the README has a Simulate section");
  const end = readme.indexOf("\n## ", start + 1);
  return readme.slice(start, end < 0 ? undefined : end);
}

function fencedBlocks(text: string, language: string): string[] {
  const blocks: string[] = [];
  const pattern = new RegExp("```" + language + "\\n([\\s\\S]*?)```", "g");
  for (let match = pattern.exec(text); match !== null; match = pattern.exec(text)) blocks.push(match[1] as string);
  return blocks;
}

/** `--name value` flags of a command line. */
function flags(args: readonly string[]): Map<string, string> {
  const found = new Map<string, string>();
  args.forEach((arg, i) => {
    if (arg.startsWith("--")) found.set(arg.slice(2), args[i + 1] !== undefined && !args[i + 1]?.startsWith("--") ? (args[i + 1] as string) : "");
  });
  return found;
}

/** What a command of the list asks a simulation for, with the seeds it names. */
function simRequest(args: readonly string[]): { protocol: string; mutant?: string; scenario?: string; seeds: number[] } {
  const f = flags(args);
  const protocol = f.get("protocol") ?? "";
  const first = Number(f.get("seed"));
  const count = Number(f.get("seeds") ?? "1");
  assert.ok(Number.isSafeInteger(first), `${args.join(" ")}: an example must name its seed (--seed), so what it claims can be checked`);
  return {
    protocol,
    ...(f.has("mutant") ? { mutant: f.get("mutant") as string } : {}),
    ...(f.has("scenario") ? { scenario: f.get("scenario") as string } : {}),
    seeds: Array.from({ length: count }, (_, i) => first + i),
  };
}

function run(request: ReturnType<typeof simRequest>, seed: number) {
  const protocol = PROTOCOLS.get(request.protocol);
  assert.ok(protocol !== undefined, `no protocol ${request.protocol}`);
  return runSimulation({ protocol, seed, ...(request.mutant === undefined ? {} : { mutant: request.mutant }), ...(request.scenario === undefined ? {} : { scenario: request.scenario }) });
}

/** How many seeds of a "must pass" claim the test runs: a sample, to stay fast. */
const PASSING_SEEDS_CHECKED = 10;

const workDir = mkdtempSync(join(tmpdir(), "synod-readme-"));
after(() => rmSync(workDir, { recursive: true, force: true }));

/** Runs `npx synod ...` as a user would (in a scratch directory, for the files it writes). */
function synod(args: readonly string[]): { code: number; stdout: string } {
  const result = spawnSync(process.execPath, [bin, ...args], { cwd: workDir, encoding: "utf8", timeout: 120_000 });
  return { code: result.status ?? -1, stdout: result.stdout };
}

/**
 * Whether `actual` is what `shown` shows: the shown lines in order, each run between two
 * `...` lines contiguous in the output, the first run at its start unless `...` comes first,
 * the last at its end unless `...` comes last. Returns the first mismatch, or null.
 */
export function mismatch(shown: readonly string[], actual: readonly string[]): string | null {
  const runs: string[][] = [[]];
  for (const line of shown) {
    if (line.trim() === "...") runs.push([]);
    else (runs[runs.length - 1] as string[]).push(line);
  }
  let at = 0;
  for (let r = 0; r < runs.length; r++) {
    const lines = runs[r] as string[];
    if (lines.length === 0) continue;
    const fits = (from: number): boolean => lines.every((line, i) => actual[from + i] === line);
    let from = at;
    if (r === 0) {
      if (!fits(0)) return `the output does not begin with ${JSON.stringify(lines[0])} (it begins ${JSON.stringify(actual[0])})`;
    } else {
      while (from + lines.length <= actual.length && !fits(from)) from++;
      if (from + lines.length > actual.length) return `not in the output (in this order): ${JSON.stringify(lines.find((line, i) => actual[from + i] !== line) ?? lines[0])}`;
    }
    at = from + lines.length;
    if (r === runs.length - 1 && at !== actual.length) return `the output goes on after ${JSON.stringify(lines[lines.length - 1])}: ${JSON.stringify(actual[at])}`;
  }
  return null;
}

describe("README: the Simulate section's examples are true", () => {
  const section = simulateSection();

  describe("each command of the list does what its comment says", () => {
    const lines = fencedBlocks(section, "sh")[0]?.split("\n").filter((line) => line.trim() !== "") ?? [];
    assert.ok(lines.length >= 5, "the Simulate section starts with a list of commands");
    for (const line of lines) {
      const [command = "", comment = ""] = line.split(/\s+#\s+/);
      const words = command.trim().split(/\s+/);
      test(command.trim(), () => {
        if (words[0] === "npm") {
          assert.equal(words[1], "run");
          assert.ok(packageScripts[words[2] as string] !== undefined, `package.json has no script ${words[2]}`);
          return;
        }
        assert.deepEqual(words.slice(0, 2), ["npx", "synod"]);
        const args = words.slice(2);
        const f = flags(args);
        if (f.has("protocol")) assert.ok(PROTOCOLS.has(f.get("protocol") as string), `no protocol ${f.get("protocol")}`);
        if (f.has("scenario")) assert.ok(SCENARIO_NAMES.includes(f.get("scenario") as string), `no scenario ${f.get("scenario")}`);
        if (f.has("mutant")) assert.ok((f.get("mutant") as string) in (PROTOCOLS.get(f.get("protocol") as string)?.mutants ?? {}), `no mutant ${f.get("mutant")}`);
        if (args[0] !== "sim" || f.has("list-mutants")) {
          // Listings: they run and print something.
          const listing = synod(args);
          assert.equal(listing.code, 0);
          assert.ok(listing.stdout.trim().split("\n").length > 3, listing.stdout);
          return;
        }
        if (/caught/.test(comment)) {
          const request = simRequest(args);
          const first = request.seeds.find((seed) => run(request, seed).failure !== null);
          assert.ok(first !== undefined, `no seed of ${command} failed`);
          const claimed = /first at seed (\d+)/.exec(comment)?.[1];
          if (claimed !== undefined) assert.equal(first, Number(claimed), "the first seed caught");
        } else if (/must pass/.test(comment)) {
          const request = simRequest(args);
          for (const seed of request.seeds.slice(0, PASSING_SEEDS_CHECKED)) {
            const failure = run(request, seed).failure;
            assert.equal(failure, null, `seed ${seed}: ${failure?.checker}: ${failure?.message}`);
          }
        } else if (/replay one seed/.test(comment)) {
          const request = simRequest(args);
          assert.notEqual(run(request, request.seeds[0] as number).failure, null, "the replayed seed fails (the section reads its failure)");
          assert.ok(section.includes(`$ ${command.trim()}\n`), "the section shows what the replay prints");
        }
      });
    }
  });

  describe("each shown run prints what the README shows", () => {
    for (const block of fencedBlocks(section, "text")) {
      const lines = block.replace(/\n$/, "").split("\n");
      if (!lines[0]?.startsWith("$ ")) continue; // output without its command
      // A block may show several commands, run in order (a later one reads an earlier one's file).
      const commands: { command: string; shown: string[] }[] = [];
      for (const line of lines) {
        if (line.startsWith("$ ")) commands.push({ command: line.slice(2), shown: [] });
        else commands[commands.length - 1]?.shown.push(line);
      }
      test(commands.map((c) => c.command).join("; "), () => {
        for (const { command, shown } of commands) {
          while (shown.length > 0 && shown[shown.length - 1] === "") shown.pop();
          const words = command.split(/\s+/);
          assert.deepEqual(words.slice(0, 2), ["npx", "synod"], command);
          const result = synod(words.slice(2));
          const actual = result.stdout.replace(/\n$/, "").split("\n");
          const wrong = mismatch(shown, actual);
          assert.equal(wrong, null, `${command}: ${wrong}\nIt printed:\n${result.stdout}`);
        }
      });
    }
  });
});

describe("the README checker's matching of shown output", () => {
  test("runs between `...` must appear in order, anchored at the ends unless elided", () => {
    const out = ["a", "b", "c", "d", "e"];
    assert.equal(mismatch(["a", "b", "...", "d", "e"], out), null);
    assert.equal(mismatch(["...", "c", "..."], out), null);
    assert.match(mismatch(["b", "..."], out) ?? "", /does not begin/);
    assert.match(mismatch(["a", "...", "d"], out) ?? "", /goes on after "d"/);
    assert.match(mismatch(["a", "...", "d", "c", "..."], out) ?? "", /not in the output/);
    assert.match(mismatch(["a", "...", "e", "...", "d"], out) ?? "", /not in the output/);
  });
});
