// The table of command modules main.ts loads one of: each module defines exactly the
// commands the table names for it, so a command line naming one loads the right module.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { Command } from "commander";
import { describe, test } from "node:test";
import { COMMAND_MODULES, commandModulesFor } from "./main.js";

describe("synod's command modules, loaded one at a time", () => {
  test("each module defines exactly the commands listed for it, and no two list the same name", async () => {
    const all: string[] = [];
    for (const module of COMMAND_MODULES) {
      const program = new Command("synod");
      (await module.load())(program, () => {});
      assert.deepEqual(program.commands.map((command) => command.name()), [...module.names]);
      assert.deepEqual(program.commands.flatMap((command) => command.aliases()), [], "an alias would name a command the table does not list");
      all.push(...module.names);
    }
    assert.equal(new Set(all).size, all.length);
  });

  test("a command line naming a command loads its module alone; any other loads every module", () => {
    const synod = (...args: string[]): readonly string[][] => commandModulesFor(["node", "synod", ...args]).map((module) => [...module.names]);
    assert.deepEqual(synod("node", "--id", "1"), [["node"]]);
    assert.deepEqual(synod("get", "k"), [["put", "get", "ls", "del", "txn", "watch", "compact", "lease", "elect", "lock"]]);
    assert.deepEqual(synod("check", "history.json"), [["sim", "protocols", "scenarios", "check"]]);
    for (const other of [[], ["--help"], ["help", "node"], ["--version"], ["nodes"]]) assert.equal(synod(...other).length, COMMAND_MODULES.length);
  });

  test("`synod node` loads neither undici nor the SDK (about 0.1 s of CPU each start): only a node that forwards or trusts a CA loads undici, when it first does", () => {
    // A process of its own: this one has loaded every command module above.
    const program = `
      import { createRequire } from "node:module";
      await import("./main.js");
      await import("./node-command.js");
      const loaded = Object.keys(createRequire(import.meta.url).cache).filter((path) => path.includes("/node_modules/undici/"));
      console.log(JSON.stringify({ undici: loaded.length }));`;
    const run = spawnSync(process.execPath, ["--input-type=module", "-e", program], { cwd: fileURLToPath(new URL(".", import.meta.url)), encoding: "utf8", timeout: 60_000 });
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(JSON.parse(run.stdout), { undici: 0 });
  });
});
