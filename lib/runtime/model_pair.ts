/**
 * Whether two models are two versions of one model (a base and its fine-tune): same architecture,
 * depth, width, vocabulary and tokenizer. A diff of anything else compares unrelated residual
 * streams and reads both through one chat template, which is never what a user meant.
 *
 * @module
 */

import { UserError } from "../core/errors.ts";
import { dirSource } from "../io/fs_source.ts";
import { describeMismatch } from "../models/pair.ts";
import type { TokenType } from "./chat.ts";
import { type Device, type GraphDtype, type ResolvedModel, resolveModel } from "./runtime.ts";

/** A description of how the models in `baseDir` and `chatDir` differ, or undefined when they pair. */
export function describePairMismatch(baseDir: string, chatDir: string): Promise<string | undefined> {
  return describeMismatch(dirSource(baseDir), dirSource(chatDir));
}

/** What every base-vs-chat task takes: the two models, the prompts and how to run them. */
export interface PairRunOptions {
  /** Base and chat model: directories or hub ids. */
  base: string;
  chat: string;
  prompts: readonly string[];
  tokenTypes: readonly TokenType[];
  batchSize: number;
  maxLength: number;
  device: Device;
  /** Precision of graphs built from checkpoints (default: the device's). */
  dtype?: GraphDtype;
  /** Compare models of different architectures or tokenizers anyway. */
  allowMismatch?: boolean;
  log?: (line: string) => void;
}

/**
 * The run's graph precision and the local directories of its base and chat model (a checkpoint's
 * graph built at that precision), refused in one line unless they are two versions of one model or
 * `allowMismatch` is set. `needs` says what the task needs them for ("a diff needs two versions of
 * one model").
 */
export async function resolveModelPair(
  options: Pick<PairRunOptions, "base" | "chat" | "device" | "dtype" | "allowMismatch">,
  needs: string,
): Promise<{ base: ResolvedModel; chat: ResolvedModel; baseDir: string; chatDir: string; dtype: GraphDtype }> {
  const base = await resolveModel(options.base, options);
  const chat = await resolveModel(options.chat, options);
  const mismatch = await describePairMismatch(base.dir, chat.dir);
  if (mismatch && !options.allowMismatch) {
    throw new UserError(
      `the base and chat models differ (${mismatch}): ${needs}; pass --allow-mismatch if this is deliberate`,
    );
  }
  return { base, chat, baseDir: base.dir, chatDir: chat.dir, dtype: base.dtype };
}
