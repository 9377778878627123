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

/** Variable that, when set, makes unexpected errors print their stack trace. */
export const DEBUG_ENV = "MODEL_DIFF_DEBUG";

/** One line describing any thrown value. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return error.message.split("\n")[0];
  return String(error);
}
