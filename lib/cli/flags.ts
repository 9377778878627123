/**
 * Command-line parsing shared by the scripts (node:util's parseArgs: JSR's @std/cli is unreachable
 * here, see deno.json), with bad flags turned into one-line user errors.
 *
 * @module
 */

import { parseArgs, type ParseArgsConfig } from "node:util";
import { UserError } from "../core/errors.ts";

/** One task: how it is called, what it does, its flags and two examples. */
export interface CommandSpec<F extends Record<string, FlagSpec> = Record<string, FlagSpec>> {
  task: string;
  summary: string;
  flags: F;
  examples: [string, string];
  /** Words after the flags, as the usage line shows them (tasks without it take none). */
  positionals?: string;
}

type Options = NonNullable<ParseArgsConfig["options"]>;

/** One flag: parseArgs's option plus the line of meaning `--help` prints. */
export interface FlagSpec {
  type: "string" | "boolean";
  default?: string | boolean;
  description: string;
}

/**
 * Parses `args` against the command's flag table. `--help`/`-h` prints {@linkcode helpText} and exits
 * 0; an unknown flag or a missing value is a one-line {@linkcode UserError} pointing at `--help`.
 */
export function parseFlags<T extends Options & Record<string, FlagSpec>>(
  args: string[],
  command: CommandSpec & { flags: T },
) {
  if (args.includes("--help") || args.includes("-h")) {
    console.log(helpText(command));
    Deno.exit(0);
  }
  // parseArgs validates option objects; it gets them without our description.
  const options = Object.fromEntries(
    Object.entries(command.flags).map(([name, { description: _, ...option }]) => [name, option]),
  ) as T;
  try {
    return parseArgs({
      args: joinNegativeValues(args, options),
      options,
      allowPositionals: command.positionals !== undefined,
      strict: true,
    });
  } catch (error) {
    throw new UserError(`${(error as Error).message.split("\n")[0]} (see deno task ${command.task} --help)`);
  }
}

/** Usage, each flag with its default and meaning, and two examples. */
export function helpText(command: CommandSpec): string {
  const rows = Object.entries(command.flags).map(([name, flag]) => {
    const left = `--${name}${flag.type === "string" ? " VALUE" : ""}`;
    const fallback = flag.type === "string" && flag.default !== undefined ? ` (default ${flag.default})` : "";
    return [left, flag.description + fallback];
  });
  rows.push(["-h, --help", "show this help and exit"]);
  const width = Math.max(...rows.map(([left]) => left.length)) + 2;
  return [
    `usage: deno task ${command.task} [options]${command.positionals ? ` ${command.positionals}` : ""}`,
    "",
    command.summary,
    "",
    "options:",
    ...rows.map(([left, right]) => `  ${left.padEnd(width)}${right}`),
    "",
    "examples:",
    ...command.examples.map((e) => `  ${e}`),
  ].join("\n");
}

/**
 * `--mag -3,3` is what researchers type; parseArgs reads `-3,3` as a flag. A string option followed
 * by something that starts like a negative number gets it as its value (`--mag=-3,3`).
 */
function joinNegativeValues(args: string[], options: Options): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const name = args[i].startsWith("--") ? args[i].slice(2) : undefined;
    const next = args[i + 1];
    if (name && options[name]?.type === "string" && next !== undefined && /^-[\d.]/.test(next)) {
      out.push(`${args[i]}=${next}`);
      i++;
    } else out.push(args[i]);
  }
  return out;
}

/** A positive integer flag value. */
export function positiveInt(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new UserError(`--${name} must be a positive integer, got "${value}"`);
  return n;
}

/** A number flag value (any finite number, e.g. a temperature). */
export function numberFlag(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n)) throw new UserError(`--${name} must be a number, got "${value}"`);
  return n;
}

/** A non-negative integer flag value (0 allowed, e.g. "never"). */
export function nonNegativeInt(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (value.trim() === "" || !Number.isInteger(n) || n < 0) {
    throw new UserError(`--${name} must be a non-negative integer, got "${value}"`);
  }
  return n;
}

/**
 * A layer number flag (`--layer 12`): a non-negative integer, checked against `layerCount` when known.
 * `Number("abc")` is NaN, which every later comparison would let through.
 */
export function layerFlag(value: string, layerCount?: number): number {
  const layer = nonNegativeInt("layer", value, 0);
  if (layerCount !== undefined && layer >= layerCount) {
    throw new UserError(`--layer ${layer} is out of range: this model has layers 0..${layerCount - 1}`);
  }
  return layer;
}

/** A sampling seed flag: a non-negative integer (a seed of "abc" would silently be NaN). */
export function seedFlag(value: string | undefined, fallback: number): number {
  return nonNegativeInt("seed", value, fallback);
}

/** Parses `all` or a list of layers such as `0,2,5` or `3-7`, checked against `layerCount`. */
export function parseLayers(value: string, layerCount: number): number[] {
  if (value.trim() === "all") return Array.from({ length: layerCount }, (_, i) => i);
  const layers: number[] = [];
  for (const part of value.split(",").map((s) => s.trim())) {
    const range = /^(\d+)-(\d+)$/.exec(part);
    const [from, to] = range ? [Number(range[1]), Number(range[2])] : [Number(part), Number(part)];
    if (!/^\d+(-\d+)?$/.test(part) || from > to) {
      throw new UserError(`bad --layers value "${value}": use all, a list like 0,2,5 or a range like 3-7`);
    }
    for (let l = from; l <= to; l++) layers.push(l);
  }
  const outside = layers.filter((l) => l >= layerCount);
  if (outside.length) {
    throw new UserError(`layer ${outside[0]} is out of range: this model has layers 0..${layerCount - 1}`);
  }
  return [...new Set(layers)].sort((a, b) => a - b);
}
