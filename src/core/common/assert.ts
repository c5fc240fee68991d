/**
 * Assertions for programming errors: a broken invariant means the process is wrong, so the
 * error is thrown and never caught. Operating errors (not leader, too large, ...) are the
 * typed classes in `errors.ts` instead.
 */
export class AssertionError extends Error {
  override readonly name = "AssertionError";
}

export function assert(condition: unknown, why: string): asserts condition {
  if (!condition) throw new AssertionError(why);
}

/** Terms, indexes and counters are safe non-negative integers; anything else is a bug. */
export function assertIndex(value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new AssertionError(`${what} must be a safe non-negative integer, got ${value}`);
  }
}

export function unreachable(value: never, what: string): never {
  throw new AssertionError(`unreachable: unexpected ${what}: ${JSON.stringify(value)}`);
}
