/**
 * A command line that cannot be run as given: `synod` prints its message in one line and
 * exits 2. In a module of its own so that every command can throw it without importing the
 * simulator's command (and with it the simulator) at start-up.
 */
export class UsageError extends Error {
  override readonly name = "UsageError";
}
