/**
 * Command-line parsing shared by the scripts (node:util's parseArgs: JSR's @std/cli is unreachable
 * here, see deno.json), with bad flags turned into one-line user errors.
 *
 * @module
 */

import { parseArgs, type ParseArgsConfig } from "node:util";
import { UserError } from "./errors.ts";

type Options = NonNullable<ParseArgsConfig["options"]>;

/** Parses `args` against `options`; an unknown flag or a missing value is a {@linkcode UserError} naming `usage`. */
export function parseFlags<T extends Options>(args: string[], options: T, usage: string) {
  try {
    return parseArgs({ args, options, allowPositionals: false, strict: true });
  } catch (error) {
    throw new UserError(`${(error as Error).message.split("\n")[0]} (usage: ${usage})`);
  }
}

/** A positive integer flag value. */
export function positiveInt(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new UserError(`--${name} must be a positive integer, got "${value}"`);
  return n;
}
