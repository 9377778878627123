/**
 * Whether two models are two versions of one model (a base and its fine-tune): same architecture,
 * depth, width, vocabulary and tokenizer. A diff of anything else compares unrelated residual
 * streams and reads both through one chat template, which is never what a user meant.
 *
 * @module
 */

import { type FileSource, readJsonObjectFrom } from "../core/file_source.ts";
import { sha256Hex } from "../core/sha256.ts";

interface Summary {
  model_type: string;
  layers: number;
  width: number;
  vocab: number;
  tokenizer: string;
}

async function summarise(files: FileSource): Promise<Summary> {
  const config = await readJsonObjectFrom(files, "config.json");
  const tokenizer = await files.size("tokenizer.json") === undefined
    ? undefined
    : await readJsonObjectFrom(files, "tokenizer.json") as {
      model?: unknown;
      added_tokens?: { id: number; content: string }[];
    };
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

/** A description of how the models in `base` and `chat` differ, or undefined when they pair. */
export async function describeMismatch(base: FileSource, chat: FileSource): Promise<string | undefined> {
  const [b, c] = await Promise.all([summarise(base), summarise(chat)]);
  return compare(b, c);
}

function compare(base: Summary, chat: Summary): string | undefined {
  const differences: string[] = [];
  if (base.model_type !== chat.model_type) differences.push(`model_type ${base.model_type} vs ${chat.model_type}`);
  if (base.layers !== chat.layers) differences.push(`${base.layers} vs ${chat.layers} layers`);
  if (base.width !== chat.width) differences.push(`hidden size ${base.width} vs ${chat.width}`);
  if (base.vocab !== chat.vocab) differences.push(`vocabulary ${base.vocab} vs ${chat.vocab}`);
  if (base.tokenizer !== chat.tokenizer && base.vocab === chat.vocab) differences.push("different tokenizers");
  return differences.length ? differences.join(", ") : undefined;
}
