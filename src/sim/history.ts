/**
 * A client history: every operation with its invoke ("call") and completion ("return")
 * times, in one integer unit (the simulator uses virtual microseconds).
 *
 * The JSON form (`--history-out`) is an array of these objects, one per operation:
 *   {"client":int,"op":"get|put|delete|cas","key":str,"value":str,"expected":str,
 *    "output":str|null|bool,"call":int,"return":int,"status":"ok|fail|unknown"}
 * `value` is present for put and cas, `expected` for cas; `output` is a get's value (null
 * when absent) or a cas's success, null otherwise.
 *
 * status "ok": it happened, with this output. "fail": it certainly did not happen.
 * "unknown": it timed out; a write may take effect at any time after `call`, or never;
 * an unknown read tells nothing and is ignored.
 */
export type OpKind = "get" | "put" | "delete" | "cas";
export type OpStatus = "ok" | "fail" | "unknown";

export interface Operation {
  readonly client: number;
  readonly op: OpKind;
  readonly key: string;
  readonly value?: string;
  readonly expected?: string;
  readonly output: string | null | boolean;
  readonly call: number;
  readonly return: number;
  readonly status: OpStatus;
}

export function isWrite(op: Operation): boolean {
  return op.op !== "get";
}

/** Validates parsed JSON as a history, with a message naming the first bad operation. */
export function parseHistory(json: unknown): Operation[] {
  if (!Array.isArray(json)) throw new Error("a history is a JSON array of operations");
  return json.map((raw: unknown, position) => {
    const fail = (why: string): never => {
      throw new Error(`operation ${position}: ${why}: ${JSON.stringify(raw)}`);
    };
    if (typeof raw !== "object" || raw === null) return fail("not an object");
    const o = raw as Record<string, unknown>;
    if (!Number.isSafeInteger(o.client)) fail("client must be an integer");
    if (o.op !== "get" && o.op !== "put" && o.op !== "delete" && o.op !== "cas") fail("op must be get, put, delete or cas");
    if (typeof o.key !== "string") fail("key must be a string");
    if (!Number.isSafeInteger(o.call) || !Number.isSafeInteger(o.return)) fail("call and return must be integers");
    if ((o.return as number) < (o.call as number)) fail("return is before call");
    if (o.status !== "ok" && o.status !== "fail" && o.status !== "unknown") fail("status must be ok, fail or unknown");
    if ((o.op === "put" || o.op === "cas") && typeof o.value !== "string") fail(`${String(o.op)} needs a string value`);
    if (o.op === "cas" && typeof o.expected !== "string") fail("cas needs a string expected");
    const output = o.output === undefined ? null : o.output;
    if (o.status === "ok") {
      if (o.op === "get" && output !== null && typeof output !== "string") fail("a get's output is a string or null");
      if (o.op === "cas" && typeof output !== "boolean") fail("an ok cas's output is a boolean");
    }
    return {
      client: o.client as number,
      op: o.op as OpKind,
      key: o.key as string,
      ...(typeof o.value === "string" ? { value: o.value } : {}),
      ...(typeof o.expected === "string" ? { expected: o.expected } : {}),
      output: output as string | null | boolean,
      call: o.call as number,
      return: o.return as number,
      status: o.status as OpStatus,
    };
  });
}

/** Time in microseconds, printed as milliseconds. */
export function formatTime(micros: number): string {
  return `${(micros / 1000).toFixed(3)}ms`;
}

export function describeOperation(op: Operation): string {
  const quote = (s: string | null | undefined): string => (s === null || s === undefined ? "nil" : JSON.stringify(s));
  let text: string;
  switch (op.op) {
    case "get":
      text = `get ${quote(op.key)}` + (op.status === "ok" ? ` -> ${quote(op.output as string | null)}` : "");
      break;
    case "put":
      text = `put ${quote(op.key)} = ${quote(op.value)}`;
      break;
    case "delete":
      text = `delete ${quote(op.key)}`;
      break;
    case "cas":
      text = `cas ${quote(op.key)} ${quote(op.expected)} -> ${quote(op.value)}` + (op.status === "ok" ? ` : ${op.output === true ? "succeeded" : "failed"}` : "");
      break;
  }
  const end = op.status === "unknown" ? "timed out" : formatTime(op.return);
  return `client ${op.client}: ${text}  [${formatTime(op.call)} .. ${end}] ${op.status}`;
}
