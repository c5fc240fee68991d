import { Prng } from "../core/common/prng.js";
import type { Operation } from "../sim/history.js";

export interface GeneratedHistoryOptions {
  readonly operations: number;
  readonly keys: number;
  readonly clients: number;
  readonly seed: number;
  /** Share of writes that time out (indeterminate; half of them take effect). */
  readonly timeoutShare: number;
}

/**
 * A linearizable history by construction: each operation takes effect at a random point
 * between its call and return, in time order, against a real map; clients run one
 * operation at a time. Used by the checker benchmark and tests.
 */
export function generateLinearizableHistory(options: GeneratedHistoryOptions): Operation[] {
  const prng = new Prng(options.seed);
  const clientFree = new Array<number>(options.clients).fill(0);
  type Planned = { client: number; op: Operation["op"]; key: string; value: string; call: number; point: number; ret: number; timedOut: boolean; applies: boolean };
  const planned: Planned[] = [];
  for (let n = 0; n < options.operations; n++) {
    const client = n % options.clients;
    const call = (clientFree[client] as number) + prng.int(0, 50);
    const duration = prng.int(1, 200);
    const point = call + prng.int(0, duration);
    const ret = call + duration;
    clientFree[client] = ret;
    const op = prng.pick(["get", "get", "put", "put", "delete", "cas"] as const);
    const timedOut = op !== "get" && prng.chance(options.timeoutShare);
    planned.push({ client, op, key: `key${prng.int(1, options.keys)}`, value: `v${n}`, call, point, ret, timedOut, applies: !timedOut || prng.chance(0.5) });
  }
  const state = new Map<string, string>();
  const lastWritten = new Map<string, string>();
  const history: Operation[] = [];
  for (const p of [...planned].sort((a, b) => a.point - b.point)) {
    const current = state.get(p.key) ?? null;
    const base = { client: p.client, key: p.key, call: p.call, return: p.ret, status: p.timedOut ? ("unknown" as const) : ("ok" as const) };
    switch (p.op) {
      case "get":
        history.push({ ...base, op: "get", output: current });
        break;
      case "put":
        if (p.applies) {
          state.set(p.key, p.value);
          lastWritten.set(p.key, p.value);
        }
        history.push({ ...base, op: "put", value: p.value, output: null });
        break;
      case "delete":
        if (p.applies) state.delete(p.key);
        history.push({ ...base, op: "delete", output: null });
        break;
      case "cas": {
        const expected = prng.chance(0.7) && current !== null ? current : (lastWritten.get(p.key) ?? "none");
        const succeeded = current === expected;
        if (succeeded && p.applies) state.set(p.key, p.value);
        history.push({ ...base, op: "cas", expected, value: p.value, output: p.timedOut ? null : succeeded });
        break;
      }
    }
  }
  return history.sort((a, b) => a.call - b.call);
}
