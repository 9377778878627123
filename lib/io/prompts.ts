/**
 * Prompt files on disk: read, then parsed by the platform-neutral {@linkcode parsePrompts}
 * (lib/io/prompt_parse.ts), which describes the formats. Parquet files are read lazily.
 *
 * @module
 */

import { asyncBufferFromFile } from "hyparquet";
import { parsePrompts, type ReadPromptOptions } from "./prompt_parse.ts";
import { readUserFile } from "./files.ts";
import { UserError } from "../core/errors.ts";

export { parsePrompts, promptOf, type ReadPromptOptions, samplePrompts } from "./prompt_parse.ts";

/**
 * All prompts in the file at `path`, in file order. Records of structured files (JSON Lines, JSON, CSV,
 * Parquet) without a prompt are counted and refused in one line, unless `skipBadRecords`.
 */
export async function readPromptFile(path: string, options: ReadPromptOptions = {}): Promise<string[]> {
  if (path.toLowerCase().endsWith(".parquet")) {
    await Deno.stat(path).catch(() => {
      throw new UserError(`prompt file not found: ${path}`);
    });
    return await parsePrompts(await asyncBufferFromFile(path), path, options);
  }
  return await parsePrompts(await readUserFile(path, "prompt file"), path, options);
}
