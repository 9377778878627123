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
import { bytesSource } from "../core/file_source.ts";
import type { ModelHandle } from "../runtime/runtime.ts";
import type { FeatureEncoder } from "../sae/feature_encoder.ts";
import { FeatureStats } from "../features/stats.ts";
import { TopExamples } from "../features/top_examples.ts";
import { type Collected, encodeStats, readStatsFrom } from "./stats_file.ts";

export type { Collected };

/**
 * Where a collection keeps its resume checkpoint: a file beside the run's statistics (the CLI), the
 * page's origin-private storage (a browser). Saving replaces the checkpoint whole, never half.
 */
export interface CheckpointStore {
  /** How messages name it. */
  label: string;
  /** The saved checkpoint's bytes, or undefined when there is none. */
  load(): Promise<Uint8Array | undefined>;
  save(bytes: Uint8Array): Promise<void>;
  remove(): Promise<void>;
}

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
  checkpoint: CheckpointStore;
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

/** Runs the prompts (resuming from a checkpoint when asked) and returns their statistics and top examples. */
export async function collectStats(options: CollectOptions): Promise<Collected> {
  const { handle, encoder, layer, prompts, tokenTypes, batchSize } = options;
  const { dIn, dSae } = encoder.sae.config;
  const k = options.topExamples ?? 0;
  let stats = FeatureStats.empty(tokenTypes, dSae);
  let examples = k > 0 ? TopExamples.empty(tokenTypes, dSae, k) : undefined;
  let start = 0;
  if (options.resume) {
    const saved = await options.checkpoint.load();
    if (saved) {
      const label = options.checkpoint.label;
      const checkpoint = await readStatsFrom(bytesSource(label, saved), label);
      if (checkpoint.metadata.run_fingerprint !== options.fingerprint || (checkpoint.examples?.k ?? 0) !== k) {
        throw new UserError(
          `${label} belongs to another run (other prompts, models, SAE or settings): remove it or rerun without --resume`,
        );
      }
      stats = checkpoint.stats;
      examples = checkpoint.examples;
      start = Number(checkpoint.metadata.next_prompt);
    } else {
      options.log?.(
        `--resume: no checkpoint at ${options.checkpoint.label}, so this model starts from the first prompt`,
      );
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
      await options.checkpoint.save(encodeStats(stats, {
        run_fingerprint: options.fingerprint,
        next_prompt: done,
        token_types: tokenTypes,
        num_features: encoder.sae.config.dSae,
      }, examples));
    }
    options.onProgress?.(done);
  }
  await encoder.flush();
  return { stats, examples };
}
