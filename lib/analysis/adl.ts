/**
 * The activation-difference lens (ADL): mean(chat − base) of the residual stream after layer L at
 * each read position, over the same token ids in both models, read through the chat model's final
 * norm and unembedding (a logit lens of the difference: which tokens it promotes and suppresses),
 * compared with the role-swap sweep's contrast vector of every layer, and kept as a steering vector.
 *
 * Positions: the chat-template read positions (lib/runtime/chat.ts TOKEN_TYPES) of the prompts formatted as
 * the diff formats them, and the first n tokens of each prompt as plain text (BOS + prompt, no
 * template), as the ADL paper reads the start of pretraining-like text.
 *
 * @module
 */

import { join } from "node:path";
import { collectResiduals, type PositionRule } from "../runtime/activations.ts";
import { loadForCapture } from "../runtime/runtime.ts";
import { preparePrompts } from "../runtime/chat.ts";
import { isCheckpoint, openCheckpoint } from "../models/checkpoint.ts";
import { FAMILIES } from "../models/config.ts";
import { dirSource } from "../io/fs_source.ts";
import { UserError } from "../core/errors.ts";

import type { Gpu } from "../backend/gpu.ts";
import { toFloat32 } from "../io/safetensors.ts";
import { openSafetensors } from "../io/safetensors_file.ts";
import { cosine } from "../kernels/cosine_matrix.ts";
import { type PairRunOptions, resolveModelPair } from "../runtime/model_pair.ts";
import type { StartProgress } from "../core/progress.ts";

/** The key of the plain-text position `i` (0-based). */
export function firstTokenKey(i: number): string {
  return `first_${i}`;
}

/** What {@linkcode activationDifferences} runs. */
export interface AdlOptions extends PairRunOptions {
  layer: number;
  /** Plain-text positions 0 .. firstN − 1 (0: none). */
  firstN: number;
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
  /** The resolved chat model directory (its checkpoint holds the lens's weights). */
  chatDir: string;
  /** Prompts whose assistant header was not found (read at the last token). */
  fallbacks: number;
}

/**
 * Runs both models (one at a time, graphs cut after `layer`) over the prompts and returns the mean
 * residual difference at each position key. Sums are per model in f64 and subtracted at the end:
 * both read the same token ids at the same positions, so that equals the mean of the differences.
 */
export async function activationDifferences(options: AdlOptions): Promise<ActivationDifferences> {
  const log = options.log ?? (() => {});
  const { baseDir, chatDir, dtype } = await resolveModelPair(options, "the lens needs two versions of one model");
  const keys = [...options.tokenTypes, ...Array.from({ length: options.firstN }, (_, i) => firstTokenKey(i))];
  const sums: Float64Array[][] = [];
  const counts = new Array<number>(keys.length).fill(0);
  let fallbacks = 0;
  const passes = Number(options.tokenTypes.length > 0) + Number(options.firstN > 0);
  const progress = options.progress?.("residuals", 2 * options.prompts.length * passes);
  for (const dir of [baseDir, chatDir]) {
    const handle = await loadForCapture(dir, [options.layer], { device: options.device, dtype, cut: true, log });
    try {
      const d = Number(handle.config.hidden_size);
      const sum = keys.map(() => new Float64Array(d));
      const add = (key: number, data: Float32Array, row: number) => {
        for (let i = 0; i < d; i++) sum[key][i] += data[row * d + i];
        if (dir === baseDir) counts[key]++;
      };
      const tick = (n: number) => progress?.tick(n);
      if (options.tokenTypes.length) {
        // Formatted with the chat model's template for both models, as the diff does.
        const chatFormatted = preparePrompts(handle, options.prompts, {
          maxLength: options.maxLength,
          types: options.tokenTypes,
        });
        if (dir === baseDir) fallbacks = chatFormatted.filter((p) => !p.headerFound).length;
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
  return { layer: options.layer, keys, mean, counts, chatDir, fallbacks };
}

/** The final norm and unembedding of a checkpoint, and how to apply them. */
export interface Unembedding {
  vocab: number;
  dModel: number;
  eps: number;
  /** The norm's effective scale: w, or 1 + w for Gemma's (1 + w) RMSNorm. */
  normScale: Float64Array;
  /** Reads rows [start, start + count) of the [vocab, dModel] unembedding as f32. */
  rows(start: number, count: number): Promise<Float32Array>;
}

/**
 * The chat model's final norm and unembedding, from the Hugging Face checkpoint its graph was built
 * from (`dir` is a resolved model directory: a checkpoint, or a converted one whose checkpoint.json
 * names its source). ONNX exports are refused: their weights carry no agreed names.
 */
export async function loadUnembedding(dir: string): Promise<Unembedding> {
  let source = dir;
  const record = await Deno.readTextFile(join(dir, "checkpoint.json")).then(
    (text) => JSON.parse(text) as { source?: string },
    () => undefined,
  );
  if (record?.source) source = record.source;
  const files = dirSource(source);
  if (!(await isCheckpoint(files))) {
    throw new UserError(
      `${dir} is an ONNX export: the lens reads the final norm and unembedding from a Hugging Face checkpoint (config.json + safetensors); pass --chat as one`,
    );
  }
  const checkpoint = await openCheckpoint(files);
  const { config } = checkpoint;
  const read = async (name: string, start = 0, count?: number) => {
    const tensor = checkpoint.tensors.get(name)!;
    const rowBytes = tensor.length / tensor.shape[0];
    const bytes = count ?? tensor.shape[0];
    const raw = await files.read(tensor.file, tensor.offset + start * rowBytes, bytes * rowBytes);
    return toFloat32(tensor.dtype, raw, name);
  };
  const norm = await read("model.norm.weight");
  // Gemma 2 and 3 both scale by (1 + w) (Gemma2RMSNorm, Gemma3RMSNorm).
  const gemma = FAMILIES[config.family].gemmaLayer;
  const head = config.tieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight";
  return {
    vocab: config.vocabSize,
    dModel: config.hiddenSize,
    eps: config.rmsNormEps,
    normScale: Float64Array.from(norm, (w) => gemma ? 1 + w : w),
    rows: (start, count) => read(head, start, count),
  };
}

/** Rows of the unembedding read at a time (a 128256 x 4096 f32 head is 2 GiB; 4096 rows are 64 MiB). */
const ROW_BLOCK = 4096;

/**
 * The lens: W_U · RMSNorm(v) per vector, in f64 over the f32 weights, reading the unembedding once in
 * row blocks. The final logit soft-cap (Gemma 2) is left out: it is monotonic, so the ranking is the
 * same, and the raw values are what the lens literature reports.
 */
export async function lensLogits(unembedding: Unembedding, vectors: readonly Float64Array[]): Promise<Float64Array[]> {
  const { vocab, dModel, eps, normScale } = unembedding;
  const normed = vectors.map((v) => {
    if (v.length !== dModel) {
      throw new UserError(`a ${v.length}-dimensional vector cannot be read by a ${dModel}-wide model`);
    }
    const rms = Math.sqrt(v.reduce((s, x) => s + x * x, 0) / dModel + eps);
    return v.map((x, i) => (x / rms) * normScale[i]);
  });
  const out = vectors.map(() => new Float64Array(vocab));
  for (let start = 0; start < vocab; start += ROW_BLOCK) {
    const count = Math.min(ROW_BLOCK, vocab - start);
    const block = await unembedding.rows(start, count);
    for (let r = 0; r < count; r++) {
      const row = r * dModel;
      normed.forEach((x, k) => {
        let dot = 0;
        for (let i = 0; i < dModel; i++) dot += block[row + i] * x[i];
        out[k][start + r] = dot;
      });
    }
  }
  return out;
}

/** One token of a lens ranking. */
export interface LensToken {
  rank: number;
  tokenId: number;
  logit: number;
}

/** The `n` most promoted (largest lens logit) and most suppressed (smallest) tokens; ties: lower id. */
export function lensTopTokens(logits: Float64Array, n: number): { promoted: LensToken[]; suppressed: LensToken[] } {
  const ids = [...logits.keys()];
  const pick = (sign: number) =>
    ids.sort((a, b) => sign * (logits[b] - logits[a]) || a - b).slice(0, n).map((tokenId, i) => ({
      rank: i + 1,
      tokenId,
      logit: logits[tokenId],
    }));
  return { promoted: pick(1), suppressed: pick(-1) };
}

/** The role-swap sweep's contrast vectors (`contrast.{L}` of contrast_vectors.safetensors), by layer. */
export interface ContrastVectors {
  layers: number[];
  vectors: Float32Array[];
  /** Where the sweep read its prompts (its metadata's read_position). */
  readPosition: string;
}

/** Loads every `contrast.{L}` tensor of a sweep output file, in layer order. */
export async function loadContrastVectors(path: string): Promise<ContrastVectors> {
  const file = await openSafetensors(path);
  const layers = Object.keys(file.tensors).map((n) => /^contrast\.(\d+)$/.exec(n)?.[1]).filter((l) => l !== undefined)
    .map(Number).sort((a, b) => a - b);
  if (!layers.length) {
    throw new UserError(
      `${path} holds no contrast.{layer} tensors: pass the contrast_vectors.safetensors of sweep-layers`,
    );
  }
  const metadata = file.metadata.metadata ? JSON.parse(file.metadata.metadata) as { read_position?: string } : {};
  return {
    layers,
    vectors: await Promise.all(layers.map((l) => file.float32(`contrast.${l}`))),
    readPosition: metadata.read_position ?? "unknown",
  };
}

/** cos(difference_k, contrast_L) for every position key k and layer L ([keys, layers]), on the GPU. */
export async function contrastCosines(
  gpu: Gpu,
  differences: readonly Float64Array[],
  contrast: ContrastVectors,
): Promise<Float32Array> {
  const d = differences[0].length;
  if (contrast.vectors.some((v) => v.length !== d)) {
    throw new UserError(`the contrast vectors are not ${d}-dimensional: use the sweep of this model`);
  }
  const a = new Float32Array(differences.length * d);
  differences.forEach((v, k) => a.set(v, k * d));
  const b = new Float32Array(contrast.vectors.length * d);
  contrast.vectors.forEach((v, l) => b.set(v, l * d));
  return await cosine(gpu, a, differences.length, b, contrast.vectors.length, d);
}
