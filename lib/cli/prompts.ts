/**
 * The prompts every task takes the same way: `--prompts FILE` (else the task's built-in set),
 * `--skip-bad-records`, and for the sampling tasks `--n` of them drawn with `--seed`.
 *
 * @module
 */

import { readPromptFile, samplePrompts } from "../io/prompts.ts";
import { positiveInt, seedFlag } from "./flags.ts";

/** The prompt flags' values, as parseFlags gives them. */
export interface PromptFlags {
  prompts?: string;
  "skip-bad-records"?: boolean;
  n?: string;
  seed?: string;
}

/** The prompts of `--prompts`, or `fallback` without it. */
export async function promptsFromFlags(
  values: PromptFlags,
  fallback: readonly string[],
  log: (line: string) => void,
): Promise<string[]> {
  return values.prompts
    ? await readPromptFile(values.prompts, { skipBadRecords: values["skip-bad-records"], log })
    : [...fallback];
}

/** {@linkcode promptsFromFlags}, then `--n` of them sampled with `--seed` (default 42), as the notebook does. */
export async function sampledPromptsFromFlags(
  values: PromptFlags,
  fallback: readonly string[],
  log: (line: string) => void,
): Promise<string[]> {
  return samplePrompts(
    await promptsFromFlags(values, fallback, log),
    values.n === undefined ? undefined : positiveInt("n", values.n, 1),
    seedFlag(values.seed, 42),
  );
}
