/**
 * The activation-difference lens's differences (`deno task adl`, and the page's ADL steering vector),
 * wherever the models are: both models run over the prompts at their chat-template read positions and
 * their first plain-text tokens, and the mean residual difference at each position key.
 *
 * @module
 */

import { collectResiduals, type PositionRule } from "../runtime/activations.ts";
import { preparePrompts, type TokenType } from "../runtime/chat.ts";
import type { ModelHandle } from "../runtime/handle.ts";
import type { StartProgress } from "../core/progress.ts";

/** The key of the plain-text position `i` (0-based). */
export function firstTokenKey(i: number): string {
  return `first_${i}`;
}

/** What the differences are taken over. */
export interface DifferenceOptions {
  layer: number;
  prompts: readonly string[];
  tokenTypes: readonly TokenType[];
  /** Plain-text positions 0 .. firstN − 1 (0: none). */
  firstN: number;
  maxLength: number;
  batchSize: number;
  /** Called once with the number of forward passes; returns a tick function. */
  progress?: StartProgress;
}

/** Mean differences per position key, in key order (read positions, then first_0 ...). */
export interface ActivationDifferences {
  layer: number;
  keys: string[];
  /** mean(chat) − mean(base) per key (= mean(chat − base): the same tokens in both), f64. */
  mean: Float64Array[];
  /** Prompts that had the position (a short plain prompt lacks late first_i). */
  counts: number[];
  /** Prompts whose assistant header was not found (read at the last token). */
  fallbacks: number;
}

/**
 * Runs both models (one at a time, each loaded by `load` cut after `layer`, and disposed here) over the
 * prompts and returns the mean residual difference at each position key. Sums are per model in f64 and
 * subtracted at the end: both read the same token ids at the same positions, so that equals the mean
 * of the differences.
 */
export async function differencesOf(
  load: (model: "base" | "chat") => Promise<ModelHandle>,
  options: DifferenceOptions,
): Promise<ActivationDifferences> {
  const keys = [...options.tokenTypes, ...Array.from({ length: options.firstN }, (_, i) => firstTokenKey(i))];
  const sums: Float64Array[][] = [];
  const counts = new Array<number>(keys.length).fill(0);
  let fallbacks = 0;
  const passes = Number(options.tokenTypes.length > 0) + Number(options.firstN > 0);
  const progress = options.progress?.("residuals", 2 * options.prompts.length * passes);
  for (const model of ["base", "chat"] as const) {
    const handle = await load(model);
    try {
      const d = Number(handle.config.hidden_size);
      const sum = keys.map(() => new Float64Array(d));
      const add = (key: number, data: Float32Array, row: number) => {
        for (let i = 0; i < d; i++) sum[key][i] += data[row * d + i];
        if (model === "base") counts[key]++;
      };
      const tick = (n: number) => progress?.tick(n);
      if (options.tokenTypes.length) {
        // Formatted with the chat model's template for both models, as the diff does.
        const chatFormatted = preparePrompts(handle, options.prompts, {
          maxLength: options.maxLength,
          types: options.tokenTypes,
        });
        if (model === "base") fallbacks = chatFormatted.filter((p) => !p.headerFound).length;
        const rule: PositionRule = { kind: "types", types: options.tokenTypes };
        const got = await collectResiduals(handle, chatFormatted, [options.layer], rule, options.batchSize, tick);
        const data = got.byLayer.get(options.layer)!;
        const types = options.tokenTypes.length;
        for (let row = 0; row < got.offsets.at(-1)!; row++) add(row % types, data, row);
      }
      if (options.firstN) {
        const plain = preparePrompts(handle, options.prompts, { raw: true, maxLength: options.firstN });
        const got = await collectResiduals(handle, plain, [options.layer], { kind: "all" }, options.batchSize, tick);
        const data = got.byLayer.get(options.layer)!;
        got.positions.forEach((positions, p) => {
          positions.forEach((t, k) => add(options.tokenTypes.length + t, data, got.offsets[p] + k));
        });
      }
      sums.push(sum);
    } finally {
      await handle.dispose();
    }
  }
  progress?.finish();
  const [base, chat] = sums;
  const mean = keys.map((_, k) => chat[k].map((c, i) => counts[k] ? (c - base[k][i]) / counts[k] : 0));
  return { layer: options.layer, keys, mean, counts, fallbacks };
}
