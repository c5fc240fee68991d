/**
 * A node's log as its reader gets it: JSON lines in a file or a pipe, one readable line per
 * event at a terminal, and `--log-format` to force either.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { freePorts } from "../runtime/server/process-cluster.test-util.js";
import { resolveLogFormat } from "./logging.js";

const SYNOD_BIN = fileURLToPath(new URL("../../bin/synod.js", import.meta.url));
const HAS_SCRIPT = spawnSync("script", ["--version"], { stdio: "ignore" }).status === 0;

/** Runs `command` (argv) until its output shows "serving", then stops it; its output. */
function outputUntilServing(command: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command[0] as string, command.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`no "serving" line within 15 s:\n${output}`));
    }, 15_000);
    const collect = (chunk: Buffer): void => {
      output += chunk.toString("utf8");
      if (/serving/.test(output)) child.kill("SIGTERM");
    };
    child.stdout.on("data", collect);
    child.stderr.on("data", collect);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve(output);
    });
  });
}

describe("the node's log format", { timeout: 60_000 }, () => {
  let root = "";
  let run = 0;
  before(() => {
    root = mkdtempSync(join(tmpdir(), "synod-logging-"));
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  async function nodeArgs(...extra: string[]): Promise<string[]> {
    const [http, peer] = await freePorts(2);
    return [process.execPath, SYNOD_BIN, "node", "--id", "1", "--http", `127.0.0.1:${http}`, "--peer", `127.0.0.1:${peer}`, "--data-dir", join(root, `n${run++}`), ...extra];
  }

  const lines = (output: string): string[] => output.split(/\r?\n/).filter((line) => line.trim() !== "");
  const isJson = (line: string): boolean => {
    try {
      return typeof JSON.parse(line) === "object";
    } catch {
      return false;
    }
  };

  test("the default is pretty on a terminal, JSON otherwise", () => {
    assert.equal(resolveLogFormat(undefined, true), "pretty");
    assert.equal(resolveLogFormat(undefined, false), "json");
    assert.equal(resolveLogFormat("json", true), "json");
    assert.equal(resolveLogFormat("pretty", false), "pretty");
  });

  test("to a pipe: JSON lines; --log-format pretty: one readable line per event", async () => {
    const json = lines(await outputUntilServing(await nodeArgs()));
    assert.ok(json.length > 0 && json.every(isJson), json.join("\n"));
    const pretty = lines(await outputUntilServing(await nodeArgs("--log-format", "pretty")));
    const serving = pretty.find((line) => line.includes("serving"));
    assert.match(serving ?? "", /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: serving \{.*"node":1/, pretty.join("\n"));
    assert.ok(pretty.every((line) => !isJson(line)), pretty.join("\n"));
  });

  test("at a terminal: pretty by default, JSON with --log-format json", { skip: HAS_SCRIPT ? false : "needs script(1), from util-linux, for a terminal" }, async () => {
    // script(1) runs the node with its stdout on a pseudo-terminal.
    const atTerminal = async (...extra: string[]): Promise<string[]> => {
      const args = await nodeArgs(...extra);
      const command = args.map((arg) => `'${arg}'`).join(" ");
      const raw = await outputUntilServing(["script", "-qefc", command, "/dev/null"]);
      // Stopping script(1) hangs up its terminal, and a node takes SIGHUP as "reload TLS", not
      // "exit": it would outlive the test. Its data directory, this test's own, names it.
      spawnSync("pkill", ["-TERM", "-f", "--", args[args.indexOf("--data-dir") + 1] as string]);
      const output = raw.replace(new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, "g"), ""); // colours
      // script(1) says so when it is stopped: not the node's.
      return lines(output).filter((line) => !line.startsWith("Session terminated"));
    };
    const pretty = await atTerminal();
    assert.ok(
      pretty.some((line) => /INFO: serving/.test(line)),
      pretty.join("\n"),
    );
    assert.ok(pretty.every((line) => !isJson(line)), pretty.join("\n"));
    const json = await atTerminal("--log-format", "json");
    assert.ok(json.length > 0 && json.every(isJson), json.join("\n"));
  });
});
