/**
 * The phases of a transaction across ranges for a range this node does not host (docs/
 * sharding.md, "Placement"). Where ranges are on some members only, the node coordinating a
 * transaction, or recovering one whose coordinator vanished (the leader of a range holding
 * its intent), may host no replica of another range it touches, the anchor often. Such a
 * phase (prepare, decide or resolve: nothing else) is sent over the peer connections, on a
 * group id no range uses, to a node that hosts the range (its leader first), which writes it
 * through its own replica and sends the result back. The phases are idempotent by the
 * transaction's id (a range takes a repeated one as a duplicate), so one that got no answer
 * is asked of the next node hosting the range.
 */
import type { NodeId } from "../../core/engine/contract.js";
import { decodeCommand, encodeCommand } from "../../core/kv/command.js";
import type { KvResult } from "../../core/kv/model.js";
import { GROUP_ID_MAX, type GroupId } from "../../core/multi/group.js";
import type { GroupRouter } from "../../core/multi/router.js";
import type { Network } from "../../core/replica/contract.js";
import type { KvOperation } from "./driver.js";

/** The group id these requests travel on: below the directory's, which no range is given. */
export const RANGE_WRITES_GROUP: GroupId = GROUP_ID_MAX - 2;

/** The phases a peer may ask this node to write. */
const PHASES = new Set(["txn-prepare", "txn-decide", "txn-resolve"]);

type RangeWriteMessage =
  | { readonly type: "range-write"; readonly id: number; readonly range: number; readonly command: Uint8Array }
  | { readonly type: "range-written"; readonly id: number; readonly result?: KvResult; readonly error?: { readonly name: string; readonly message: string } };

/** The node asked does not host the range, or did not answer in time: the next node hosting it is asked. */
class NotAnsweredError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NotAnsweredError";
  }
}

export interface RangeWritesHost {
  readonly groups: GroupRouter<unknown>;
  /** This node's replica of `range`, for a peer's phase; undefined when it hosts none. */
  replica(range: GroupId): { readonly driver: { write(operation: KvOperation, client: null): Promise<KvResult> } } | undefined;
  /** The nodes hosting `range`, its leader first (this node left out). */
  hostsOf(range: GroupId): readonly NodeId[];
  readonly timeoutMs: number;
}

export class RangeWrites {
  private readonly network: Network<unknown>;
  private sequence = 0;
  private readonly waiting = new Map<number, { readonly resolve: (result: KvResult) => void; readonly reject: (error: Error) => void; readonly timer: NodeJS.Timeout }>();

  constructor(private readonly host: RangeWritesHost) {
    this.network = host.groups.host(RANGE_WRITES_GROUP, (from, message) => this.receive(from, message));
  }

  /** Writes a transaction's phase in `range` through a node that hosts it; rejects with that node's error, or when none answers. */
  async write(range: GroupId, operation: KvOperation): Promise<KvResult> {
    if (!PHASES.has(operation.op)) throw new Error(`only a transaction's phases are written through another node, not ${operation.op}`);
    // The request id inside is not used: the node writing it proposes it in its own session.
    const command = encodeCommand({ ...operation, request: { clientId: 0, sequence: 0, timeMs: 0 } } as Parameters<typeof encodeCommand>[0]);
    let last: Error | null = null;
    for (const to of this.host.hostsOf(range)) {
      try {
        return await this.ask(to, range, command);
      } catch (error) {
        if (!(error instanceof NotAnsweredError)) throw error;
        last = error;
      }
    }
    throw new Error(`no node hosting range ${range} took the transaction's ${operation.op}${last === null ? " (none known yet)" : `: ${last.message}`}`);
  }

  /** Answers what is waiting with an error (the node is stopping). */
  stop(): void {
    for (const [id, waiter] of this.waiting) {
      clearTimeout(waiter.timer);
      waiter.reject(new NotAnsweredError("the node is stopping"));
      this.waiting.delete(id);
    }
  }

  private ask(to: NodeId, range: GroupId, command: Uint8Array): Promise<KvResult> {
    const id = ++this.sequence;
    return new Promise<KvResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new NotAnsweredError(`node ${to} did not answer in ${this.host.timeoutMs} ms`));
      }, this.host.timeoutMs);
      this.waiting.set(id, { resolve, reject, timer });
      const message: RangeWriteMessage = { type: "range-write", id, range, command };
      this.network.send(to, message);
    });
  }

  private receive(from: NodeId, message: unknown): void {
    const m = message as Partial<Record<string, unknown>> | null;
    if (m === null || typeof m !== "object" || !Number.isSafeInteger(m["id"])) return;
    const id = m["id"] as number;
    if (m["type"] === "range-written") {
      const waiter = this.waiting.get(id);
      if (waiter === undefined) return;
      this.waiting.delete(id);
      clearTimeout(waiter.timer);
      const error = m["error"] as { name?: unknown; message?: unknown } | undefined;
      if (error !== undefined) {
        const text = String(error.message);
        waiter.reject(error.name === "NotAnsweredError" ? new NotAnsweredError(text) : Object.assign(new Error(text), { name: String(error.name) }));
      } else if (typeof (m["result"] as { op?: unknown } | undefined)?.op === "string") waiter.resolve(m["result"] as KvResult);
      else waiter.reject(new Error(`node ${from} answered a transaction's phase with no result`));
      return;
    }
    if (m["type"] !== "range-write" || !Number.isSafeInteger(m["range"]) || !(m["command"] instanceof Uint8Array)) return;
    const answer = (body: Omit<Extract<RangeWriteMessage, { type: "range-written" }>, "type" | "id">): void => {
      const written: RangeWriteMessage = { type: "range-written", id, ...body };
      this.network.send(from, written);
    };
    let operation: KvOperation;
    try {
      const { request: _request, ...rest } = decodeCommand(m["command"]);
      operation = rest as KvOperation;
    } catch (error) {
      return answer({ error: { name: "InvalidInputError", message: `the phase does not decode: ${(error as Error).message}` } });
    }
    if (!PHASES.has(operation.op)) return answer({ error: { name: "InvalidInputError", message: `only a transaction's phases are written for another node, not ${operation.op}` } });
    const replica = this.host.replica(m["range"] as number);
    if (replica === undefined) return answer({ error: { name: "NotAnsweredError", message: `node hosts no replica of range ${String(m["range"])}` } });
    replica.driver.write(operation, null).then(
      (result) => answer({ result }),
      (error: unknown) => answer({ error: { name: error instanceof Error ? error.name : "Error", message: error instanceof Error ? error.message : String(error) } }),
    );
  }
}
