// The table of command modules main.ts loads one of: each module defines exactly the
// commands the table names for it, so a command line naming one loads the right module.
import assert from "node:assert/strict";
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
});
