/**
 * User-facing failures. A {@linkcode UserError} carries one line that names the problem and what to do;
 * scripts print it without a stack trace and exit non-zero. Anything else is a bug and keeps its stack
 * (behind an environment switch, so a user still sees one line first).
 *
 * @module
 */

/** An error caused by the user's input or machine, whose message alone tells them what to do. */
export class UserError extends Error {
  override name = "UserError";
}

/**
 * Residuals (or any encoder input) holding NaN or infinity, found at input row `row`: a
 * {@linkcode UserError} on its own, which a caller that knows which model produced the rows replaces
 * with one naming it.
 */
export class NonFiniteInputError extends UserError {
  /** The first bad row of what the encoder was given. */
  readonly row: number;
  constructor(row: number) {
    super(`input row ${row} contains NaN or infinite values: the model's residuals overflowed`);
    this.row = row;
  }
}

/** Variable that, when set, makes unexpected errors print their stack trace. */
export const DEBUG_ENV = "MODEL_DIFF_DEBUG";

/** One line describing any thrown value. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return error.message.split("\n")[0];
  return String(error);
}
