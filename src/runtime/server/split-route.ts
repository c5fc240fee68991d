/**
 * `POST /v1/shards/{id}/split` (docs/sharding.md, "Splits"): splits range `id` at the key the
 * body names (`{"key": "m"}`), or at its middle key (`{}`), and answers once this node hosts
 * both halves, with their descriptors.
 */
import { HttpError, jsonObjectBody, readBody, sendJson, type RouteContext } from "./http-api.js";
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
