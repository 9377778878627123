/**
 * A diff run's prompt list, kept beside its statistics as `prompts.json` (a JSON array of strings):
 * the stats files refer to prompts by their index in it (the top examples), and hold its digest, so
 * a list that is not the run's is refused rather than shown against its statistics.
 *
 * @module
 */

import { join } from "node:path";
import { UserError } from "../core/errors.ts";
import { promptsDigest } from "../analysis/diff_collect.ts";

export { promptsDigest };
import { writeJsonAtomic } from "../io/atomic.ts";

/** `prompts.json` in `dir`. */
export function runPromptsPath(dir: string): string {
  return join(dir, "prompts.json");
}

/** Writes the run's prompts into `dir`, atomically. */
export function writeRunPrompts(dir: string, prompts: readonly string[]): Promise<void> {
  return writeJsonAtomic(runPromptsPath(dir), prompts);
}

/**
 * The prompts in `dir`'s `prompts.json`, refused in one line (saying what `needs` them) unless their
 * digest is `digest`, the one the statistics recorded.
 */
export async function readRunPrompts(dir: string, digest: unknown, needs: string): Promise<string[]> {
  const path = runPromptsPath(dir);
  const text = await Deno.readTextFile(path).catch(() => undefined);
  let prompts: unknown;
  try {
    prompts = text === undefined ? undefined : JSON.parse(text);
  } catch {
    throw new UserError(
      `${path} is not valid JSON (damaged?); it holds the prompts of the statistics in ${dir}: ${needs}`,
    );
  }
  const valid = Array.isArray(prompts) && prompts.every((p) => typeof p === "string");
  if (!valid || await promptsDigest(prompts as string[]) !== digest) {
    throw new UserError(
      `${path} ${
        prompts === undefined ? "is missing; it holds the prompts of" : "holds other prompts than"
      } the statistics in ${dir}: ${needs}`,
    );
  }
  return prompts as string[];
}
