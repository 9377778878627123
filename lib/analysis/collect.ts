/**
 * Collecting SAE feature statistics over many prompts for one model: batches of prompts run through
 * the graph cut after the SAE's layer, the residuals at the read positions are encoded and reduced
 * (on the GPU or the CPU, as the run's device says) into statistics and each feature's top examples,
 * and both are checkpointed so an interrupted run resumes to exactly the result of an uninterrupted
 * one.
 *
 * @module
 */

import { residualOnDevice, residuals, vectorAt } from "../runtime/activations.ts";
import type { PreparedPrompt } from "../runtime/chat.ts";
import { UserError } from "../core/errors.ts";
import { openSafetensors, writeSafetensors } from "../io/safetensors_file.ts";
import type { ModelHandle } from "../runtime/runtime.ts";
import type { FeatureEncoder } from "../sae/feature_encoder.ts";
import { FeatureStats } from "../features/stats.ts";
import { TopExamples } from "../features/top_examples.ts";

/** Options of {@linkcode collectStats}. */
export interface CollectOptions {
  handle: ModelHandle;
  encoder: FeatureEncoder;
  layer: number;
  prompts: PreparedPrompt[];
  tokenTypes: readonly string[];
  batchSize: number;
  /** Write a checkpoint every this many batches (0: never). */
  checkpointEvery: number;
  checkpointPath: string;
  /**
   * Identifies the run and the model within it (a digest, never the prompts themselves); a
   * checkpoint of another run is refused.
   */
  fingerprint: string;
  resume: boolean;
  /** Where a line for the user goes (a resume with nothing to resume from says so). */
  log?: (line: string) => void;
  /** Told the number of prompts done so far (including resumed ones) after each batch. */
  onProgress?: (done: number) => void;
  /** Top examples to keep per feature and token type (0 or absent: none). */
  topExamples?: number;
  /** The run's index of `prompts[0]` (a shard's start): the top examples record global indices. */
  firstPrompt?: number;
}

/** What a collection gathered: statistics, and the top examples when asked for. */
export interface Collected {
  stats: FeatureStats;
  examples?: TopExamples;
}

/**
 * Saves statistics (F64 tensors), top examples if any (F32 values, U32 prompts; their k in the
 * metadata's `top_examples`, 0 without) and string metadata as safetensors.
 */
export function writeStats(
  path: string,
  stats: FeatureStats,
  metadata: Record<string, unknown>,
  examples?: TopExamples,
): Promise<void> {
  return writeSafetensors(path, { ...stats.toTensors(), ...examples?.toTensors() }, {
    format: "model-diff/stats/1",
    metadata: JSON.stringify({ ...metadata, top_examples: examples?.k ?? 0 }),
  });
}

/** Loads statistics (and top examples) written by {@linkcode writeStats}, with their metadata. */
export async function readStats(path: string): Promise<Collected & { metadata: Record<string, unknown> }> {
  const file = await openSafetensors(path);
  if (file.metadata.format !== "model-diff/stats/1") {
    throw new UserError(`${path} is not a statistics file of this toolkit`);
  }
  const metadata = JSON.parse(file.metadata.metadata) as Record<string, unknown>;
  const types = metadata.token_types as string[];
  const dSae = Number(metadata.num_features);
  const k = Number(metadata.top_examples ?? 0);
  const tensors = new Map<string, Uint8Array>();
  for (const name of Object.keys(file.tensors)) tensors.set(name, await file.bytes(name));
  const f64 = (name: string) => {
    const bytes = tensors.get(name)!;
    return new Float64Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 8);
  };
  const bytes = (name: string) => {
    const found = tensors.get(name);
    if (!found) throw new UserError(`${path} lacks its tensor ${name}`);
    return found;
  };
  return {
    stats: FeatureStats.fromTensors(types, dSae, f64),
    examples: k > 0 ? TopExamples.fromTensors(types, dSae, k, bytes) : undefined,
    metadata,
  };
}

/** Runs the prompts (resuming from a checkpoint when asked) and returns their statistics and top examples. */
export async function collectStats(options: CollectOptions): Promise<Collected> {
  const { handle, encoder, layer, prompts, tokenTypes, batchSize } = options;
  const { dIn, dSae } = encoder.sae.config;
  const k = options.topExamples ?? 0;
  let stats = FeatureStats.empty(tokenTypes, dSae);
  let examples = k > 0 ? TopExamples.empty(tokenTypes, dSae, k) : undefined;
  let start = 0;
  if (options.resume) {
    const exists = await Deno.stat(options.checkpointPath).then(() => true, () => false);
    if (exists) {
      const checkpoint = await readStats(options.checkpointPath);
      if (checkpoint.metadata.run_fingerprint !== options.fingerprint || (checkpoint.examples?.k ?? 0) !== k) {
        throw new UserError(
          `${options.checkpointPath} belongs to another run (other prompts, models, SAE or settings): remove it or rerun without --resume`,
        );
      }
      stats = checkpoint.stats;
      examples = checkpoint.examples;
      start = Number(checkpoint.metadata.next_prompt);
    } else {
      options.log?.(`--resume: no checkpoint at ${options.checkpointPath}, so this model starts from the first prompt`);
    }
  }
  // On the shared GPU device the residuals never leave it: the read positions are gathered there and
  // each batch's statistics stay there until a checkpoint or the end (the same kernels as the host
  // path, so the same numbers).
  const onDevice = handle.outputsOnGpu && encoder.encodeGatheredInto !== undefined;
  let batches = 0;
  for (let first = start; first < prompts.length; first += batchSize) {
    const batch = prompts.slice(first, first + batchSize);
    const rows = batch.length * tokenTypes.length;
    const rowType = new Uint32Array(rows).map((_, r) => r % tokenTypes.length);
    const firstPrompt = (options.firstPrompt ?? 0) + first;
    const rowExamples = examples && {
      examples,
      promptOfRow: new Uint32Array(rows).map((_, r) => firstPrompt + Math.floor(r / tokenTypes.length)),
    };
    if (onDevice) {
      const result = await residualOnDevice(handle, batch.map((p) => p.ids), layer);
      const rowStarts = batch.flatMap((prompt, b) => prompt.positions.map((t) => (b * result.length + t) * dIn));
      try {
        await encoder.encodeGatheredInto!(result.buffer, rowStarts, rowType, stats, rowExamples);
      } finally {
        result.release();
      }
    } else {
      const result = await residuals(handle, batch.map((p) => p.ids), [layer]);
      const x = new Float32Array(rows * dIn);
      batch.forEach((prompt, b) => {
        prompt.positions.forEach((t, k) => x.set(vectorAt(result, layer, b, t), (b * tokenTypes.length + k) * dIn));
      });
      await encoder.encodeInto(x, rows, rowType, stats, rowExamples);
    }
    batches++;
    const done = first + batch.length;
    if (options.checkpointEvery && batches % options.checkpointEvery === 0 && done < prompts.length) {
      await encoder.flush();
      await writeStats(options.checkpointPath, stats, {
        run_fingerprint: options.fingerprint,
        next_prompt: done,
        token_types: tokenTypes,
        num_features: encoder.sae.config.dSae,
      }, examples);
    }
    options.onProgress?.(done);
  }
  await encoder.flush();
  return { stats, examples };
}
