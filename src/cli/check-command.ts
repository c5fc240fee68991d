import { readFileSync } from "node:fs";
import { checkLinearizability } from "../sim/check/linearizability.js";
import { parseHistory } from "../sim/history.js";

/** `synod check FILE`: the linearizability verdict on a history file (exit 0 yes, 1 no, 2 unknown). */
export function checkCommand(file: string): number {
  let history;
  try {
    history = parseHistory(JSON.parse(readFileSync(file, "utf8")));
  } catch (error) {
    process.stderr.write(`synod check: cannot read ${file}: ${error instanceof Error ? error.message : String(error)}\n`);
    return 2;
  }
  const started = process.hrtime.bigint();
  const result = checkLinearizability(history);
  const millis = Number(process.hrtime.bigint() - started) / 1e6;
  switch (result.verdict) {
    case "linearizable":
      process.stdout.write(`linearizable: ${history.length} operations over ${result.keys} keys, checked in ${millis.toFixed(1)} ms\n`);
      return 0;
    case "violation":
      process.stdout.write(`${result.explanation}\n`);
      return 1;
    case "inconclusive":
      process.stdout.write(`inconclusive: ${result.explanation}\n`);
      return 2;
  }
}
