/**
 * Reading the JSON files other tools write (configs, hyperparameters): a file that is not a JSON
 * object is the user's to fix, so it is one line naming the file, not a parser's stack trace.
 *
 * @module
 */

import { readJsonObjectFrom } from "../core/file_source.ts";
import { dirSource } from "./fs_source.ts";

/** The JSON object in file `path`; a missing file, invalid JSON or another JSON value is a {@linkcode UserError}. */
export function readJsonObject(path: string): Promise<Record<string, unknown>> {
  return readJsonObjectFrom(dirSource(""), path);
}
