/**
 * Whether two models are two versions of one model (a base and its fine-tune): same architecture,
 * depth, width, vocabulary and tokenizer. A diff of anything else compares unrelated residual
 * streams and reads both through one chat template, which is never what a user meant.
 *
 * @module
 */

import { join } from "node:path";
import { UserError } from "./errors.ts";
import { resolveModelDir } from "./hub.ts";
import { sha256Hex } from "./identity.ts";
import type { GraphDtype } from "./models/decoder_graph.ts";

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

/**
 * The local directories of a base and a chat model (a checkpoint's graph built at `dtype`), refused in
 * one line unless they are two versions of one model or `allowMismatch` is set. `needs` says what the
 * task needs them for ("a diff needs two versions of one model").
 */
export async function resolveModelPair(
  base: string,
  chat: string,
  options: { dtype: GraphDtype; allowMismatch?: boolean; needs: string },
): Promise<{ baseDir: string; chatDir: string }> {
  const baseDir = await resolveModelDir(base, { dtype: options.dtype });
  const chatDir = await resolveModelDir(chat, { dtype: options.dtype });
  const mismatch = await describePairMismatch(baseDir, chatDir);
  if (mismatch && !options.allowMismatch) {
    throw new UserError(
      `the base and chat models differ (${mismatch}): ${options.needs}; pass --allow-mismatch if this is deliberate`,
    );
  }
  return { baseDir, chatDir };
}
