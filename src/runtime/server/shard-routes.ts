/**
 * The routes that steer one range (docs/sharding.md): `POST /v1/shards/{id}/split` splits
 * range `id` at the key the body names (`{"key": "m"}`), or at its middle key (`{}`), and
 * answers once this node hosts both halves, with their descriptors; `POST
 * /v1/shards/{id}/move` moves one of its replicas (`{"from": F, "to": T}`), where ranges are
 * on some members only (`--replicas`), and answers with its replicas after the move.
 */
import { FORWARDED_HEADER, HttpError, jsonObjectBody, readBody, sendJson, type RouteContext } from "./http-api.js";
import { RangeNotFoundError, rangeTableOf } from "./range-routing.js";

/** What a split answers: the split itself and both ranges' descriptors after it. */
export interface SplitAnswer {
  readonly range: number;
  readonly at: string;
  readonly child: number;
  readonly epoch: number;
  readonly revision: number;
  readonly ranges: readonly object[];
}

export async function serveSplit(c: RouteContext): Promise<void> {
  const table = rangeTableOf(c.service);
  const range = table.get(c.memberId);
  if (range === undefined) throw new RangeNotFoundError(c.memberId, false);
  const key = parseSplitRequest(await readBody(c.request, 8192, "a split request"));
  if (c.service.split === undefined) throw new HttpError(501, "not_supported", "this cluster's ranges do not split (only a sharded Raft cluster's do: synod cluster --shards N)");
  sendJson(c.response, 200, await c.service.split(range.id, key));
}

/** The split key a request names; null for `{}` or no body (split at the middle key). */
export function parseSplitRequest(body: Uint8Array): string | null {
  const parsed = jsonObjectBody(body, 'a split request is JSON: {"key": "KEY"}, or {} to split at the middle key', 'a split request is {"key": "KEY"}, or {}');
  if (parsed === null) return null;
  const extra = Object.keys(parsed).find((name) => name !== "key");
  if (extra !== undefined) throw new HttpError(400, "invalid_input", `a split request has no field ${JSON.stringify(extra)}: it is {"key": "KEY"}, or {}`);
  const key = parsed["key"];
  if (key === undefined || key === null) return null;
  if (typeof key !== "string" || key.length === 0) throw new HttpError(400, "invalid_input", "key must be a non-empty string: the first key of the new range");
  return key;
}

export async function serveMove(c: RouteContext): Promise<void> {
  const table = rangeTableOf(c.service);
  const range = table.get(c.memberId);
  if (range === undefined) throw new RangeNotFoundError(c.memberId, false);
  const request = parseMoveRequest(await readBody(c.request, 4096, "a move request"));
  if (c.service.moveReplica === undefined) throw new HttpError(409, "move_refused", "this cluster's ranges are each on every member (a sharded Raft cluster started with --replicas places them): there is no replica to move");
  const answer = await c.service.moveReplica(range.id, request, c.request.headers[FORWARDED_HEADER] !== undefined, c.guard.credentials);
  sendJson(c.response, answer.status, answer.body);
}

const MOVE_SHAPE = '{"from": NODE, "to": NODE}';

/** The nodes a move request names: the replica's node now, and the one it moves to. */
export function parseMoveRequest(body: Uint8Array): { readonly from: number; readonly to: number } {
  const parsed = jsonObjectBody(body, `a move request is JSON: ${MOVE_SHAPE}`, `a move request is ${MOVE_SHAPE}`);
  if (parsed === null) throw new HttpError(400, "invalid_input", `a move request is ${MOVE_SHAPE}`);
  const extra = Object.keys(parsed).find((name) => name !== "from" && name !== "to");
  if (extra !== undefined) throw new HttpError(400, "invalid_input", `a move request has no field ${JSON.stringify(extra)}: it is ${MOVE_SHAPE}`);
  const node = (name: string): number => {
    const value = parsed[name];
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1) throw new HttpError(400, "invalid_input", `${name} must be a node id (a positive integer): ${MOVE_SHAPE}`);
    return value;
  };
  return { from: node("from"), to: node("to") };
}
