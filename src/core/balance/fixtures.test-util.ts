import type { Endpoint } from "./endpoint.js";

/** Endpoints "e0".."e{n-1}", all of weight 1 unless `weights` says otherwise. */
export function endpointsOf(count: number, weights: readonly number[] = []): Endpoint[] {
  return Array.from({ length: count }, (_, index) => ({ id: `e${index}`, weight: weights[index] ?? 1 }));
}

export function countPicks(ids: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const id of ids) counts.set(id, (counts.get(id) ?? 0) + 1);
  return counts;
}
