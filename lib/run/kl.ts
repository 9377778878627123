/**
 * A KL run: both models loaded on the run's device, the prompts formatted with the chat model's
 * template, and the KL of every token (lib/analysis/kl.ts computes it given the loaded models).
 *
 * @module
 */

import { type TokenKl, tokenKl } from "../analysis/kl.ts";
import { acquireGpu } from "../backend/gpu.ts";
import { type PreparedPrompt, preparePrompts } from "../runtime/chat.ts";
import { type PairRunOptions, resolveModelPair } from "../runtime/model_pair.ts";
import { loadModel, type ModelHandle } from "../runtime/runtime.ts";
import type { StartProgress } from "../core/progress.ts";

/** What {@linkcode runKl} compares. */
export interface KlRunOptions extends PairRunOptions {
  /** Called once with the number of prompts; returns a tick function. */
  progress?: StartProgress;
}

/** The per-token KL of a run, the prompts as run, and the chat tokenizer to show tokens with. */
export interface KlRun {
  tokens: TokenKl[];
  prompts: PreparedPrompt[];
  decode: (ids: number[]) => string;
}

/**
 * Loads both full models on `device` (both at once: the KL of a token needs both distributions),
 * formats the prompts with the chat model's template for both (as the diff does) and computes the
 * KL of every token.
 */
export async function runKl(options: KlRunOptions): Promise<KlRun> {
  const log = options.log ?? (() => {});
  const { baseDir, chatDir, dtype } = await resolveModelPair(options, "KL compares two versions of one model");
  const gpu = await acquireGpu({ log });
  // On webgpu the logits (and the KV cache, never read) stay on the device the KL kernel runs on.
  const load = (source: string) => loadModel(source, { device: options.device, dtype, outputsOnGpu: true, log });
  const chat = await load(chatDir);
  let base: ModelHandle | undefined;
  try {
    base = await load(baseDir);
    const prompts = preparePrompts(chat, options.prompts, { maxLength: options.maxLength, types: options.tokenTypes });
    const progress = options.progress?.("KL", prompts.length);
    const tokens = await tokenKl({
      gpu,
      base,
      chat,
      prompts,
      tokenTypes: options.tokenTypes,
      batchSize: options.batchSize,
      onBatch: (n) => progress?.tick(n),
    });
    progress?.finish();
    const tokenizer = chat.tokenizer;
    return { tokens, prompts, decode: (ids) => tokenizer.decode(ids, { skip_special_tokens: false }) };
  } finally {
    await base?.dispose();
    await chat.dispose();
  }
}
