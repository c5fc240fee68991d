import { assert } from "../common/assert.js";

/**
 * `{ ...defaults, ...options }` would let an explicit `undefined` erase a default (which
 * `exactOptionalPropertyTypes` forbids callers to write, but a parsed configuration can
 * still carry), so defaults are merged with the defined values only.
 */
export function withDefaults<T extends object>(defaults: T, options: Partial<T>): T {
  const result = { ...defaults };
  for (const [name, value] of Object.entries(options)) if (value !== undefined) (result as Record<string, unknown>)[name] = value;
  return result;
}

/** Asserts `value` is a safe integer in [min, max]; `name` is the option, for the message. */
export function assertIntegerIn(name: string, value: number, min: number, max: number): void {
  assert(Number.isSafeInteger(value) && value >= min && value <= max, `${name} must be an integer in [${min}, ${max}], got ${value}`);
}

/** Asserts `value` is a finite number in [min, max]. */
export function assertNumberIn(name: string, value: number, min: number, max: number): void {
  assert(Number.isFinite(value) && value >= min && value <= max, `${name} must be a number in [${min}, ${max}], got ${value}`);
}

/** Asserts a caller's clock reading is a finite number (milliseconds from any fixed origin). */
export function assertTime(nowMs: number): void {
  assert(Number.isFinite(nowMs), `nowMs must be a finite number, got ${nowMs}`);
}
