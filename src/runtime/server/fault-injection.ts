/**
 * Faults injected into a node's own peer transport for a while, on request
 * (`POST /v1/debug/faults`): the dashboard's "isolate" and "drop messages" buttons, and
 * demonstrations of what a partition does. Off unless the node was started with
 * `--allow-fault-injection`; with auth, for admins only (the route says so).
 *
 * One fault at a time: a new request replaces the one in force, and `{"heal": true}` ends
 * it. Each ends by itself after its `durationMs` (at most FAULT_DURATION_MS_MAX), so a
 * forgotten fault cannot cut a node off for good.
 */
import type { TransportFaults } from "../transport/peer-transport.js";
import { HttpError } from "./http-api.js";

export const FAULT_DURATION_MS_MAX = 10 * 60_000;

export interface FaultsView {
  readonly isolate: boolean;
  readonly dropRate: number;
  readonly untilMs: number;
}

export type FaultRequest = ({ readonly heal: true } | { readonly heal: false; readonly isolate: boolean; readonly dropRate: number; readonly durationMs: number }) & {
  /** The node to inject it into (null: the one asked), which passes it on. */
  readonly node: number | null;
};

export class FaultInjector {
  private current: FaultsView | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    /** Whether the node was started with --allow-fault-injection. */
    readonly allowed: boolean,
    private readonly apply: (faults: TransportFaults | null) => void,
    /** Told of each change, to show on the dashboard and in the log. */
    private readonly changed: (message: string, faults: FaultsView | null) => void,
  ) {}

  view(): FaultsView | null {
    return this.current;
  }

  set(request: FaultRequest): FaultsView | null {
    if (!this.allowed) throw new HttpError(409, "fault_injection_disabled", "fault injection is off on this node: start it with --allow-fault-injection (synod cluster --allow-fault-injection for a local cluster)");
    this.clearTimer();
    if (request.heal) {
      this.heal("healed by request");
      return null;
    }
    const faults = { isolate: request.isolate, dropRate: request.isolate ? 1 : request.dropRate, untilMs: Date.now() + request.durationMs };
    this.current = faults;
    this.apply({ isolate: faults.isolate, dropRate: faults.dropRate });
    this.timer = setTimeout(() => this.heal(`healed after ${request.durationMs} ms`), request.durationMs);
    this.timer.unref();
    this.changed(request.isolate ? `isolated from every peer for ${request.durationMs} ms` : `dropping ${Math.round(request.dropRate * 100)}% of peer messages for ${request.durationMs} ms`, faults);
    return faults;
  }

  close(): void {
    this.clearTimer();
  }

  private heal(why: string): void {
    this.clearTimer();
    if (this.current === null) return;
    this.current = null;
    this.apply(null);
    this.changed(why, null);
  }

  private clearTimer(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }
}

const SHAPE = '{"isolate": true, "durationMs": N}, {"dropRate": 0.3, "durationMs": N} or {"heal": true}, each with "node": ID to name another member';

/** Parses `POST /v1/debug/faults`'s body; 400 with the accepted shapes otherwise. */
export function parseFaultRequest(body: Uint8Array): FaultRequest {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(body).toString("utf8"));
  } catch {
    throw new HttpError(400, "invalid_input", `a fault request is JSON: ${SHAPE}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new HttpError(400, "invalid_input", `a fault request is ${SHAPE}`);
  const { heal, isolate, dropRate, durationMs, node: target, ...rest } = parsed as Record<string, unknown>;
  if (target !== undefined && (typeof target !== "number" || !Number.isSafeInteger(target) || target <= 0)) throw new HttpError(400, "invalid_input", "node must be a member's id, a positive integer");
  const node = typeof target === "number" ? target : null;
  const unknown = Object.keys(rest);
  if (unknown.length > 0) throw new HttpError(400, "invalid_input", `unknown field ${unknown.join(", ")}: a fault request is ${SHAPE}`);
  if (heal === true) {
    if (isolate !== undefined || dropRate !== undefined || durationMs !== undefined) throw new HttpError(400, "invalid_input", '{"heal": true} takes no other field');
    return { heal: true, node };
  }
  if (heal !== undefined) throw new HttpError(400, "invalid_input", "heal must be true when given");
  if (isolate !== undefined && typeof isolate !== "boolean") throw new HttpError(400, "invalid_input", "isolate must be true or false");
  if (dropRate !== undefined && (typeof dropRate !== "number" || !(dropRate > 0 && dropRate <= 1))) throw new HttpError(400, "invalid_input", "dropRate must be a number above 0 and at most 1 (a share of the messages)");
  if ((isolate === true) === (dropRate !== undefined)) throw new HttpError(400, "invalid_input", `give one of "isolate": true or "dropRate": a fault request is ${SHAPE}`);
  if (typeof durationMs !== "number" || !Number.isSafeInteger(durationMs) || durationMs < 1 || durationMs > FAULT_DURATION_MS_MAX) {
    throw new HttpError(400, "invalid_input", `durationMs must be an integer from 1 to ${FAULT_DURATION_MS_MAX}: every fault ends by itself`);
  }
  return { heal: false, isolate: isolate === true, dropRate: typeof dropRate === "number" ? dropRate : 1, durationMs, node };
}
