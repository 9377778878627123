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

/**
 * Runs a script's body: a {@linkcode UserError} becomes `error: <message>` on stderr and exit code 1;
 * any other error becomes one `internal error` line (exit 2), with the stack when {@linkcode DEBUG_ENV} is set.
 */
export async function runMain(body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (error) {
    if (error instanceof UserError) {
      console.error(`error: ${error.message}`);
      Deno.exit(1);
    }
    if (Deno.env.get(DEBUG_ENV)) console.error(error);
    else console.error(`internal error: ${describeError(error)} (set ${DEBUG_ENV}=1 for the stack trace)`);
    Deno.exit(2);
  }
}

/** Reads a file the user named; a missing one is a {@linkcode UserError} calling it `what`. */
export async function readUserFile(path: string, what: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) throw new UserError(`${what} not found: ${path}`);
    throw error;
  }
}
