/**
 * Reading the JSON files other tools write (configs, hyperparameters): a file that is not a JSON
 * object is the user's to fix, so it is one line naming the file, not a parser's stack trace.
 *
 * @module
 */

import { UserError } from "../errors.ts";

/** The JSON object in file `path`; a missing file, invalid JSON or another JSON value is a {@linkcode UserError}. */
export async function readJsonObject(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) throw new UserError(`file not found: ${path}`);
    throw error;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new UserError(`${path} is not valid JSON (${(error as Error).message})`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new UserError(`${path} does not hold a JSON object`);
  }
  return value as Record<string, unknown>;
}
