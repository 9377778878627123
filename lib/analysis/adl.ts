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
import { loadForCapture } from "../runtime/runtime.ts";
import { isCheckpoint, openCheckpoint } from "../models/checkpoint.ts";
import { dirSource } from "../io/fs_source.ts";
import { UserError } from "../core/errors.ts";
import type { Gpu } from "../backend/gpu.ts";
import { openSafetensors } from "../io/safetensors_file.ts";
import { type ActivationDifferences as Differences, differencesOf, firstTokenKey } from "./activation_differences.ts";
import { lensLogits, type LensToken, lensTopTokens, type Unembedding, unembeddingOf } from "./lens.ts";

export { firstTokenKey, lensLogits, type LensToken, lensTopTokens, type Unembedding };
import { cosine } from "../kernels/cosine_matrix.ts";
import { type PairRunOptions, resolveModelPair } from "../runtime/model_pair.ts";
import type { StartProgress } from "../core/progress.ts";

/** What {@linkcode activationDifferences} runs. */
export interface AdlOptions extends PairRunOptions {
  layer: number;
  /** Plain-text positions 0 .. firstN − 1 (0: none). */
  firstN: number;
  /** Called once with the number of forward passes; returns a tick function. */
  progress?: StartProgress;
}

/** What {@linkcode activationDifferences} found, and where the chat model it resolved lies. */
export type ActivationDifferences = Differences & {
  /** The resolved chat model directory (its checkpoint holds the lens's weights). */
  chatDir: string;
};

/** Resolves the pair and runs {@linkcode differencesOf} on it, each model loaded cut after `layer`. */
export async function activationDifferences(options: AdlOptions): Promise<ActivationDifferences> {
  const log = options.log ?? (() => {});
  const { baseDir, chatDir, dtype } = await resolveModelPair(options, "the lens needs two versions of one model");
  const dirs = { base: baseDir, chat: chatDir };
  const differences = await differencesOf(
    (model) => loadForCapture(dirs[model], [options.layer], { device: options.device, dtype, cut: true, log }),
    options,
  );
  return { ...differences, chatDir };
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
  return await unembeddingOf(await openCheckpoint(files));
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
