// Multi-Paxos scenarios as scripts with reviewed transcripts, one file each in testdata/
// (the format is documented in script.test-util.ts). Lines starting with "> " are commands,
// indented lines what they printed, "#" lines say what each block shows and which rule of
// Lamport's "Paxos Made Simple" (PMS), van Renesse and Altinbuken's "Paxos Made Moderately
// Complex" (PMMC) or Chandra et al.'s "Paxos Made Live" (PML) makes it so. A test reruns the
// commands and compares the whole transcript, so a change in the engine's behaviour fails
// as a line diff of the conversation between the nodes.
//
// Updating: when a change to the engine is intended, run
//
//   npm run build && SYNOD_UPDATE_GOLDEN=1 node --test dist/core/paxos/paxos-scripts.test.js
//
// which rewrites the files in src/core/paxos/testdata/ in place. Then read the diff line by
// line against the papers before committing, and fix the "#" comments with it: these are
// reviewed protocol traces, not snapshots to refresh blindly.
import assert from "node:assert/strict";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { runScript } from "./script.test-util.js";

const updating = process.env.SYNOD_UPDATE_GOLDEN === "1";
// The tests run from dist/; the scripts live beside the source.
const dir = fileURLToPath(new URL("../../../src/core/paxos/testdata/", import.meta.url));

describe("scripted Multi-Paxos scenarios (testdata/*.txt)", () => {
  const files = readdirSync(dir).filter((name) => name.endsWith(".txt")).sort();
  test("the scripts are there", () => assert.ok(files.length >= 8, `only ${files.length} scripts in ${dir}`));
  for (const file of files) {
    test(file.replace(/\.txt$/, "").replace(/-/g, " "), () => {
      const path = dir + file;
      const golden = readFileSync(path, "utf8");
      const actual = runScript(golden.replace(/\n$/, "")) + "\n";
      if (updating && actual !== golden) {
        writeFileSync(path, actual);
        return;
      }
      assert.equal(actual, golden);
    });
  }
});
