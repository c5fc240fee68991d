/**
 * Loads a user's state machine module for `synod sim --state-machine MODULE`: a path to an
 * ES module (relative to the working directory) whose default export has the shape in
 * sim/app/module.ts. The main thread loads it to check it before running anything; each
 * worker thread loads it again, by the same absolute URL.
 */
import { existsSync } from "node:fs";
import { basename, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { checkSimModule, type SimApplication } from "../sim/app/module.js";
import { UsageError } from "./usage-error.js";

export async function loadSimApplication(path: string): Promise<SimApplication> {
  const absolute = resolve(path);
  if (!existsSync(absolute)) throw new UsageError(`--state-machine ${path}: no such file (give the path of an ES module, e.g. examples/lock-service/sim.js)`);
  let imported: unknown;
  try {
    imported = await import(pathToFileURL(absolute).href);
  } catch (error) {
    throw new UsageError(`--state-machine ${path} could not be loaded: ${error instanceof Error ? error.message : String(error)}`);
  }
  let module;
  try {
    module = checkSimModule(imported, path);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  return { module, path, name: module.name ?? basename(path) };
}
