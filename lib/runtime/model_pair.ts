/**
 * Whether two models are two versions of one model (a base and its fine-tune): same architecture,
 * depth, width, vocabulary and tokenizer. A diff of anything else compares unrelated residual
 * streams and reads both through one chat template, which is never what a user meant.
 *
 * @module
 */

import { join } from "node:path";
import { UserError } from "../core/errors.ts";
import { sha256Hex } from "../io/digest.ts";
import type { TokenType } from "./chat.ts";
import { type Device, type GraphDtype, type ResolvedModel, resolveModel } from "./runtime.ts";

interface Summary {
  model_type: string;
  layers: number;
  width: number;
  vocab: number;
  tokenizer: string;
}

async function summarise(dir: string): Promise<Summary> {
  const config = JSON.parse(await Deno.readTextFile(join(dir, "config.json")));
  const tokenizer = await Deno.readTextFile(join(dir, "tokenizer.json")).then(
    (text) => JSON.parse(text) as { model?: unknown; added_tokens?: { id: number; content: string }[] },
    () => undefined,
  );
  // The vocabulary and merges, and the special tokens' ids and texts (not their flags, which
  // instruct releases sometimes change).
  const tokens = tokenizer?.added_tokens?.map((t) => [t.id, t.content]);
  return {
    model_type: String(config.model_type ?? "?"),
    layers: Number(config.num_hidden_layers),
    width: Number(config.hidden_size),
    vocab: Number(config.vocab_size),
    tokenizer: tokenizer ? await sha256Hex([JSON.stringify([tokenizer.model, tokens])]) : "none",
  };
}

/** A description of how the models in `baseDir` and `chatDir` differ, or undefined when they pair. */
export async function describePairMismatch(baseDir: string, chatDir: string): Promise<string | undefined> {
  const [base, chat] = await Promise.all([summarise(baseDir), summarise(chatDir)]);
  const differences: string[] = [];
  if (base.model_type !== chat.model_type) differences.push(`model_type ${base.model_type} vs ${chat.model_type}`);
  if (base.layers !== chat.layers) differences.push(`${base.layers} vs ${chat.layers} layers`);
  if (base.width !== chat.width) differences.push(`hidden size ${base.width} vs ${chat.width}`);
  if (base.vocab !== chat.vocab) differences.push(`vocabulary ${base.vocab} vs ${chat.vocab}`);
  if (base.tokenizer !== chat.tokenizer && base.vocab === chat.vocab) differences.push("different tokenizers");
  return differences.length ? differences.join(", ") : undefined;
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
