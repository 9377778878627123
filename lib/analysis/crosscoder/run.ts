/**
 * One crosscoder analysis: the same token ids through the base and the chat model (graphs cut after
 * the crosscoder's layer), their residuals at the chat-template read positions paired and encoded
 * by the crosscoder on the GPU, activation statistics per read position, and the decoder statistics
 * and tags of every latent.
 *
 * @module
 */

import { collectResiduals } from "../../runtime/activations.ts";
import { loadForCapture } from "../../runtime/runtime.ts";
import { type PreparedPrompt, preparePrompts, type TokenType } from "../../runtime/chat.ts";
import { UserError } from "../../core/errors.ts";
import { acquireGpu } from "../../backend/gpu.ts";
import { readModelShape } from "../../models/hub.ts";
import { type PairRunOptions, resolveModelPair } from "../../runtime/model_pair.ts";
import type { Device, GraphDtype } from "../../runtime/runtime.ts";
import { type FeatureMetrics, FeatureStats } from "../../features/stats.ts";
import { type LatentDecoderStats, latentDecoderStats } from "./analysis.ts";
import type { Crosscoder } from "./config.ts";
import { CrosscoderEncoder } from "./encode.ts";
import { checkCrosscoderWidth, loadCrosscoder } from "./load.ts";
import type { StartProgress } from "../../core/progress.ts";

/** What {@linkcode runCrosscoder} runs. */
export interface CrosscoderRunOptions extends PairRunOptions {
  /** Crosscoder directory or hub path. */
  crosscoder: string;
  /** Default: the layer the crosscoder's files name, else the middle one. */
  layer?: number;
  /** TransformerLens layout: each model's input scale. */
  inputScale?: readonly [number, number];
  /** Called once with the number of forward passes; returns a tick function. */
  progress?: StartProgress;
}

/** Residuals of both models at the same tokens: row r = prompt ⌊r / types⌋ at token type r mod types. */
export interface PairedResiduals {
  /** [rows, dModel] each. */
  base: Float32Array;
  chat: Float32Array;
  rows: number;
  /** Token type index of each row. */
  rowType: Uint32Array;
  /** The prompts as both models read them (formatted with the chat model's template). */
  prepared: PreparedPrompt[];
}

/**
 * Runs both models (one at a time) over the prompts formatted once, with the chat model's template
 * and tokenizer, so both read the very same token ids, and returns their residuals after `layer` at
 * the read positions.
 */
export async function pairedResiduals(options: {
  baseDir: string;
  chatDir: string;
  prompts: readonly string[];
  layer: number;
  tokenTypes: readonly TokenType[];
  batchSize: number;
  maxLength: number;
  device: Device;
  dtype: GraphDtype;
  log?: (line: string) => void;
  tick?: (n: number) => void;
}): Promise<PairedResiduals> {
  const types = options.tokenTypes.length;
  let prepared: PreparedPrompt[] = [];
  const data: Float32Array[] = [];
  for (const dir of [options.chatDir, options.baseDir]) {
    const handle = await loadForCapture(dir, [options.layer], {
      device: options.device,
      dtype: options.dtype,
      cut: true,
      log: options.log,
    });
    try {
      if (dir === options.chatDir) {
        prepared = preparePrompts(handle, options.prompts, { maxLength: options.maxLength, types: options.tokenTypes });
      }
      const rule = { kind: "types", types: options.tokenTypes } as const;
      const got = await collectResiduals(handle, prepared, [options.layer], rule, options.batchSize, options.tick);
      data.push(got.byLayer.get(options.layer)!);
    } finally {
      await handle.dispose();
    }
  }
  const rows = prepared.length * types;
  return {
    chat: data[0],
    base: data[1],
    rows,
    rowType: Uint32Array.from({ length: rows }, (_, r) => r % types),
    prepared,
  };
}

/** A finished analysis. */
export interface CrosscoderRun {
  crosscoder: Crosscoder;
  layer: number;
  tokenTypes: TokenType[];
  decoder: LatentDecoderStats;
  /** Activation statistics per token type (all_mean, max, sparsity, active_mean, ...). */
  activations: Record<string, FeatureMetrics>;
  prompts: number;
  /** Prompts whose assistant header was not found (read at the last token). */
  fallbacks: number;
}

/** Loads the crosscoder, checks it against the models, and runs the analysis. */
export async function runCrosscoder(options: CrosscoderRunOptions): Promise<CrosscoderRun> {
  const log = options.log ?? (() => {});
  if (!options.tokenTypes.length) throw new UserError("--token-types is empty: name at least one read position");
  // Its files first: a wrong crosscoder is refused before any model is converted or loaded.
  const crosscoder = await loadCrosscoder(options.crosscoder, { layer: options.layer, inputScale: options.inputScale });
  const { baseDir, chatDir, dtype } = await resolveModelPair(
    options,
    "a crosscoder diff needs two versions of one model",
  );
  const shape = await readModelShape(chatDir);
  checkCrosscoderWidth(crosscoder, shape.dModel);
  const layer = options.layer ?? crosscoder.config.hookLayer ?? Math.floor(shape.layers / 2);
  if (!Number.isInteger(layer) || layer < 0 || layer >= shape.layers) {
    throw new UserError(`layer ${layer} is out of range: these models have layers 0..${shape.layers - 1}`);
  }
  const { config } = crosscoder;
  if (config.architecture === "batchtopk" && (config.threshold ?? -1) < 0) {
    log(
      "this BatchTopK crosscoder has no calibrated threshold: every positive latent is kept (dictionary_learning's encode does the same)",
    );
  }
  const progress = options.progress?.("residuals", 2 * options.prompts.length);
  const paired = await pairedResiduals({
    baseDir,
    chatDir,
    prompts: options.prompts,
    layer,
    tokenTypes: options.tokenTypes,
    batchSize: options.batchSize,
    maxLength: options.maxLength,
    device: options.device,
    dtype,
    log,
    tick: (n) => progress?.tick(n),
  });
  progress?.finish();
  const stats = FeatureStats.empty(options.tokenTypes, config.dict);
  const encoder = await CrosscoderEncoder.create(await acquireGpu({ log }), crosscoder);
  try {
    // One batch of prompts' rows at a time, as the diff encodes: the input and activation buffers of
    // every row at once would outgrow the adapter's binding limit on a real prompt set.
    const block = options.batchSize * options.tokenTypes.length;
    const d = config.dModel;
    for (let start = 0; start < paired.rows; start += block) {
      const end = Math.min(paired.rows, start + block);
      await encoder.encodeInto(
        paired.base.subarray(start * d, end * d),
        paired.chat.subarray(start * d, end * d),
        end - start,
        paired.rowType.subarray(start, end),
        stats,
      );
    }
  } finally {
    encoder.destroy();
  }
  return {
    crosscoder,
    layer,
    tokenTypes: [...options.tokenTypes],
    decoder: latentDecoderStats(crosscoder),
    activations: stats.finalize(),
    prompts: paired.prepared.length,
    fallbacks: paired.prepared.filter((p) => !p.headerFound).length,
  };
}
