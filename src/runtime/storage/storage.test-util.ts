// Helpers shared by the storage tests.
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { join } from "node:path";

/** The paths of the files in `dir` whose names end with `suffix`, sorted by name. */
export function files(dir: string, suffix: string): string[] {
  return readdirSync(dir)
    .filter((n) => n.endsWith(suffix))
    .sort()
    .map((n) => join(dir, n));
}

/** `items[at]` (negative: from the end), asserted to exist. */
export function only<T>(items: readonly T[], at: number): T {
  const item = items[at < 0 ? items.length + at : at];
  assert.ok(item !== undefined, `no item at ${at} of ${items.length}`);
  return item;
}
