// The boundary of DESIGN.md, checked on the source text: core/ and sim/ (outside tests)
// reach no I/O, no clock and no ambient randomness. tsconfig.pure.json proves Node's APIs
// are unreachable there; this test covers what ECMAScript itself offers.
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const root = join(fileURLToPath(new URL(".", import.meta.url)), "..", "src");

const forbidden: { pattern: RegExp; why: string }[] = [
  { pattern: /\bDate\s*\.\s*now\b|\bnew\s+Date\b/, why: "wall-clock time" },
  { pattern: /\bMath\s*\.\s*random\b/, why: "ambient randomness" },
  { pattern: /\b(setTimeout|setInterval|setImmediate|queueMicrotask)\s*\(/, why: "timers" },
  { pattern: /from\s+["']node:|require\s*\(|import\s*\(\s*["']node:/, why: "node: imports" },
  { pattern: /\bprocess\s*\.|\bperformance\s*\.|\bcrypto\s*\./, why: "host globals" },
  { pattern: /\basync\s+(function\b|\(|[A-Za-z_$][\w$]*\s*=>)|\bawait\b/, why: "async code" },
];

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return path.endsWith(".ts") && !path.endsWith(".test.ts") ? [path] : [];
  });
}

test("core/ and sim/ use no clock, randomness, timers, node: imports or async", () => {
  const files = [...sources(join(root, "core")), ...sources(join(root, "sim"))];
  assert.ok(files.length > 10, `expected the pure sources, found ${files.length}`);
  const violations: string[] = [];
  for (const file of files) {
    const lines = readFileSync(file, "utf8").split("\n");
    lines.forEach((line, index) => {
      const code = line.replace(/\/\/.*$/, "");
      if (/^\s*\*/.test(code)) return; // doc comment lines
      for (const { pattern, why } of forbidden) {
        if (pattern.test(code)) violations.push(`${relative(root, file)}:${index + 1}: ${why}: ${line.trim()}`);
      }
    });
  }
  assert.deepEqual(violations, []);
});

test("the purity scan catches what it should", () => {
  const samples = ["const t = Date.now();", "Math.random()", "setTimeout(f, 1)", 'import fs from "node:fs";', "process.exit(1)", "async function f() {}"];
  for (const sample of samples) {
    assert.ok(forbidden.some(({ pattern }) => pattern.test(sample)), `not caught: ${sample}`);
  }
});
