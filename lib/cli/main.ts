/**
 * A script's entry point: one line for a user's mistake, one line (and a stack on request) for a bug.
 *
 * @module
 */

import { DEBUG_ENV, describeError, UserError } from "../core/errors.ts";

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
