/**
 * One empty Map and one empty Set shared by every owner that holds nothing yet. A node holds
 * a replica, a store and an engine per range, each with a few maps that stay empty while
 * the range is idle (its waiting requests, its transactions' intents and locks, ...); an
 * empty Map costs 184 bytes of heap, so at 10,000 ranges a dozen of them per range were
 * 22 MB of a node's heap holding nothing. An owner starts with the shared one, reads it as
 * any map (size, get, has, iteration, delete and clear are no-ops on an empty map), and
 * takes a map of its own only to add to it: `this.map = writable(this.map); this.map.set(...)`.
 * Adding to the shared one is a bug and throws.
 */
import { AssertionError } from "./assert.js";

class SharedEmptyMap extends Map<never, never> {
  override set(): never {
    throw new AssertionError("the shared empty map was written to: take a map of its own with writable() first");
  }
}

class SharedEmptySet extends Set<never> {
  override add(): never {
    throw new AssertionError("the shared empty set was written to: take a set of its own with writableSet() first");
  }
}

const EMPTY_MAP: Map<never, never> = new SharedEmptyMap();
const EMPTY_SET: Set<never> = new SharedEmptySet();

/** The shared empty map, typed for its owner; never written to. */
export function emptyMap<K, V>(): Map<K, V> {
  return EMPTY_MAP as Map<K, V>;
}

/** The shared empty set, typed for its owner; never written to. */
export function emptySet<T>(): Set<T> {
  return EMPTY_SET as Set<T>;
}

/** `map` itself, or a new map of its own when it is the shared empty one. */
export function writable<K, V>(map: Map<K, V>): Map<K, V> {
  return map === (EMPTY_MAP as Map<K, V>) ? new Map<K, V>() : map;
}

/** `set` itself, or a new set of its own when it is the shared empty one. */
export function writableSet<T>(set: Set<T>): Set<T> {
  return set === (EMPTY_SET as Set<T>) ? new Set<T>() : set;
}
