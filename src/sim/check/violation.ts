/** Thrown by an invariant checker; ends the simulated run as a failure. */
export class InvariantViolation extends Error {
  constructor(
    readonly checker: string,
    message: string,
  ) {
    super(message);
    this.name = "InvariantViolation";
  }
}
