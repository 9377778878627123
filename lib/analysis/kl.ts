/**
 * Where the two models' predictions differ: per-token KL(chat ‖ base) over the same chat-formatted
 * prompts. Both full models run the same batch; each one's logits go to the GPU once and the KL
 * kernel (lib/kernels/kl_divergence.ts) returns one value per token. Then the summaries the report
 * shows: mean and median per token type and per position, a histogram, the highest-KL tokens.
 *
 * @module
 */

import { forwardBatch } from "../runtime/activations.ts";
import { type PreparedPrompt, TOKEN_TYPES, type TokenType } from "../runtime/chat.ts";
import { UserError } from "../core/errors.ts";
import type { Gpu } from "../backend/gpu.ts";
import { GpuLogits, klDivergence, type RowRun } from "../kernels/kl_divergence.ts";
import type { ModelHandle, OrtTensor } from "../runtime/runtime.ts";

/** The group of tokens that are none of the read positions. */
export const OTHER_TOKENS = "other";
/** The group of every token. */
export const ALL_TOKENS = "all";

/** The KL of one token: how differently the two models predict what follows it. */
export interface TokenKl {
  prompt: number;
  /** Index of the token in the prompt's ids. */
  position: number;
  tokenId: number;
  /** The read positions (token types) this token is, or [{@linkcode OTHER_TOKENS}]. */
  types: string[];
  /** KL(chat ‖ base) of the next-token distributions, in nats. */
  kl: number;
  /** Each model's most likely next token. */
  chatTop: number;
  baseTop: number;
}

/** What {@linkcode tokenKl} runs. */
export interface TokenKlOptions {
  gpu: Gpu;
  base: ModelHandle;
  chat: ModelHandle;
  prompts: readonly PreparedPrompt[];
  /** The token types of `prompts[i].positions`, in order. */
  tokenTypes: readonly TokenType[];
  batchSize: number;
  /** Told the number of prompts of each finished batch. */
  onBatch?: (prompts: number) => void;
}

/**
 * The logits of a forward pass ([batch, length, vocab]) on the GPU as f32 rows of the batch's real
 * tokens: gathered in place when the model left them on the shared device as f32, else read back
 * (fp16 exports give f16 logits) and uploaded.
 */
async function logitsOnGpu(
  gpu: Gpu,
  outputs: Record<string, OrtTensor>,
  runs: RowRun[],
  what: string,
): Promise<GpuLogits> {
  const tensor = outputs.logits;
  try {
    if (!tensor) throw new UserError(`the ${what} model's graph has no "logits" output: pass a causal language model`);
    const vocab = tensor.dims[2];
    if (tensor.location === "gpu-buffer" && tensor.type === "float32") {
      return GpuLogits.gather(gpu, tensor.gpuBuffer as GPUBuffer, vocab, runs, what);
    }
    const data = await tensor.getData();
    return GpuLogits.upload(
      gpu,
      data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>),
      vocab,
      runs,
      what,
    );
  } finally {
    // The gather's copies are submitted: the output buffers can go back to onnxruntime-web.
    for (const output of Object.values(outputs)) output.dispose();
  }
}

/** The token types each position of `prompt` is read as, {@linkcode OTHER_TOKENS} where none. */
export function positionTypes(prompt: PreparedPrompt, tokenTypes: readonly string[]): string[][] {
  const types = prompt.ids.map(() => [] as string[]);
  prompt.positions.forEach((t, k) => types[t].push(tokenTypes[k]));
  return types.map((list) => list.length ? list : [OTHER_TOKENS]);
}

/**
 * KL(chat ‖ base) at every token of every prompt. Per batch, the base model's logits are uploaded
 * (real tokens only) and released before the chat model runs, so the host holds one model's logits
 * at a time.
 */
export async function tokenKl(options: TokenKlOptions): Promise<TokenKl[]> {
  const { gpu, prompts, batchSize } = options;
  const out: TokenKl[] = [];
  for (let first = 0; first < prompts.length; first += batchSize) {
    const batch = prompts.slice(first, first + batchSize);
    const ids = batch.map((p) => p.ids);
    const upload = async (handle: ModelHandle, what: string) => {
      const { outputs, length, lengths } = await forwardBatch(handle, ids);
      const runs: RowRun[] = lengths.map((n, b) => ({ start: b * length, count: n }));
      return await logitsOnGpu(gpu, outputs, runs, what);
    };
    const base = await upload(options.base, "base");
    let chat: GpuLogits | undefined;
    try {
      chat = await upload(options.chat, "chat");
      if (chat.vocab !== base.vocab) {
        throw new UserError(
          `the chat model predicts over ${chat.vocab} tokens and the base model over ${base.vocab}: KL needs one vocabulary`,
        );
      }
      const rows = await klDivergence(chat, base);
      let row = 0;
      batch.forEach((prompt, b) => {
        const types = positionTypes(prompt, options.tokenTypes);
        prompt.ids.forEach((tokenId, position) => {
          out.push({
            prompt: first + b,
            position,
            tokenId,
            types: types[position],
            kl: rows.kl[row],
            chatTop: rows.argmaxP[row],
            baseTop: rows.argmaxQ[row],
          });
          row++;
        });
      });
    } finally {
      base.destroy();
      chat?.destroy();
    }
    options.onBatch?.(batch.length);
  }
  return out;
}

/** Count, mean and median of the KL of one group of tokens. */
export interface KlGroup {
  /** `token_type` or `position`. */
  by: "token_type" | "position";
  key: string;
  count: number;
  mean: number;
  median: number;
}

/** Mean (f64) and median (the mean of the middle two for an even count) of `values`. */
export function meanMedian(values: readonly number[]): { mean: number; median: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const n = sorted.length;
  const mean = sorted.reduce((s, v) => s + v, 0) / n;
  const median = n % 2 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
  return { mean, median };
}

/**
 * Per token type (the read positions in `tokenTypes` order, then {@linkcode OTHER_TOKENS} and
 * {@linkcode ALL_TOKENS}) and per position in the prompt: how many tokens, mean and median KL.
 * Groups without tokens are left out.
 */
export function klGroups(tokens: readonly TokenKl[], tokenTypes: readonly string[] = TOKEN_TYPES): KlGroup[] {
  const byType = new Map<string, number[]>([...tokenTypes, OTHER_TOKENS, ALL_TOKENS].map((t) => [t, []]));
  const byPosition: number[][] = [];
  for (const token of tokens) {
    for (const type of token.types) byType.get(type)?.push(token.kl);
    byType.get(ALL_TOKENS)!.push(token.kl);
    (byPosition[token.position] ??= []).push(token.kl);
  }
  const groups: KlGroup[] = [];
  for (const [key, values] of byType) {
    if (values.length) groups.push({ by: "token_type", key, count: values.length, ...meanMedian(values) });
  }
  byPosition.forEach((values, position) => {
    if (values?.length) {
      groups.push({ by: "position", key: String(position), count: values.length, ...meanMedian(values) });
    }
  });
  return groups;
}

/** A histogram: `bins` equal-width bins from `edges[0]` to `edges[bins]` (the last one closed). */
export interface Histogram {
  edges: number[];
  counts: number[];
}

/** The histogram of `values` over [min(0, min), max] in `bins` equal bins. */
export function histogram(values: readonly number[], bins = 50): Histogram {
  // Loops, not Math.min(...values): a run has more tokens than a call may take arguments.
  let [lo, hi] = [0, 0];
  for (const v of values) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
  const width = (hi - lo) / bins || 1;
  const counts = new Array<number>(bins).fill(0);
  for (const v of values) counts[Math.min(bins - 1, Math.floor((v - lo) / width))]++;
  return { edges: Array.from({ length: bins + 1 }, (_, i) => lo + i * width), counts };
}

/** The `n` highest-KL tokens, highest first (ties: earlier prompt, then earlier position). */
export function topKlTokens(tokens: readonly TokenKl[], n: number): TokenKl[] {
  return [...tokens].sort((a, b) => b.kl - a.kl || a.prompt - b.prompt || a.position - b.position).slice(0, n);
}
