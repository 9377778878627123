/**
 * Reading the residual stream: one forward pass of a batch through a graph rewritten to output the
 * residuals at the requested layers (and usually cut after the last of them).
 *
 * @module
 */

import type { PreparedPrompt, TokenType } from "./chat.ts";
import { UserError } from "../core/errors.ts";
import { residualOutputName } from "../graph/rewrite.ts";
import type { ModelHandle, OrtTensor } from "./runtime.ts";

/** Residuals of one batch: per layer a [batch, length, dModel] f32 array (right-padded). */
export interface ResidualBatch {
  batch: number;
  /** Padded sequence length. */
  length: number;
  dModel: number;
  /** Real (unpadded) length of each sequence. */
  lengths: number[];
  byLayer: Map<number, Float32Array>;
}

/** One forward pass of a right-padded batch: every graph output, and the batch's shape. */
export interface ForwardBatch {
  outputs: Record<string, OrtTensor>;
  batch: number;
  /** Padded sequence length. */
  length: number;
  /** Real (unpadded) length of each sequence. */
  lengths: number[];
}

/**
 * Runs `sequences` (token ids, unpadded) as one right-padded batch through the model's graph with an
 * empty KV cache and returns every output (logits, captured residuals). Position ids count real
 * tokens; pads attend to nothing that real tokens see.
 */
export async function forwardBatch(handle: ModelHandle, sequences: number[][]): Promise<ForwardBatch> {
  const batch = sequences.length;
  const lengths = sequences.map((s) => s.length);
  const length = Math.max(...lengths);
  const ids = new BigInt64Array(batch * length);
  const mask = new BigInt64Array(batch * length);
  const positions = new BigInt64Array(batch * length);
  sequences.forEach((sequence, b) => {
    sequence.forEach((id, t) => {
      ids[b * length + t] = BigInt(id);
      mask[b * length + t] = 1n;
      positions[b * length + t] = BigInt(t);
    });
  });
  const feeds: Record<string, OrtTensor> = {};
  const config = handle.config as unknown as {
    num_key_value_heads: number;
    head_dim?: number;
    hidden_size: number;
    num_attention_heads: number;
  };
  const headDim = config.head_dim ?? config.hidden_size / config.num_attention_heads;
  // An fp16 graph (built at --dtype fp16, or an fp16 export) takes an fp16 KV cache.
  const halfInputs = new Set(
    handle.session.inputMetadata.filter((m) => m.isTensor && m.type === "float16").map((m) => m.name),
  );
  for (const name of handle.session.inputNames) {
    if (name === "input_ids") feeds[name] = handle.tensor("int64", ids, [batch, length]);
    else if (name === "attention_mask") feeds[name] = handle.tensor("int64", mask, [batch, length]);
    else if (name === "position_ids") feeds[name] = handle.tensor("int64", positions, [batch, length]);
    else if (name.startsWith("past_key_values.")) {
      const dims = [batch, config.num_key_value_heads, 0, headDim];
      feeds[name] = halfInputs.has(name)
        ? handle.tensor("float16", new Float16Array(0), dims)
        : handle.tensor("float32", new Float32Array(0), dims);
    } else throw new UserError(`the graph has an input this toolkit cannot fill: ${name}`);
  }
  return { outputs: await handle.session.run(feeds), batch, length, lengths };
}

/**
 * Runs `sequences` (token ids, unpadded) as one right-padded batch and returns the residual stream
 * at `layers`.
 */
export async function residuals(handle: ModelHandle, sequences: number[][], layers: number[]): Promise<ResidualBatch> {
  const captured = handle.rewrite?.capture ?? [];
  const missing = layers.filter((l) => !captured.includes(l));
  if (missing.length) {
    throw new UserError(`the model was not rewritten to capture layer(s) ${missing.join(", ")}; load it with them`);
  }
  const { outputs, batch, length, lengths } = await forwardBatch(handle, sequences);
  const byLayer = new Map<number, Float32Array>();
  let dModel = 0;
  for (const layer of layers) {
    const tensor = outputs[residualOutputName(layer)];
    dModel = tensor.dims[2];
    byLayer.set(layer, tensor.data as Float32Array);
  }
  return { batch, length, dModel, lengths, byLayer };
}

/**
 * One batch's residual stream at one layer, left where onnxruntime-web computed it: a [batch, length,
 * dModel] f32 buffer on the process's shared GPU device (right-padded).
 */
export interface DeviceResidualBatch {
  buffer: GPUBuffer;
  batch: number;
  /** Padded sequence length. */
  length: number;
  dModel: number;
  /** Real (unpadded) length of each sequence. */
  lengths: number[];
  /** Hands the buffer back to onnxruntime-web: call once the work that reads it has been submitted. */
  release(): void;
}

/**
 * Runs `sequences` as one right-padded batch through a model loaded with `outputsOnGpu` and returns
 * the residual stream at `layer` without reading it back.
 */
export async function residualOnDevice(
  handle: ModelHandle,
  sequences: number[][],
  layer: number,
): Promise<DeviceResidualBatch> {
  if (!handle.outputsOnGpu || !handle.rewrite?.capture.includes(layer)) {
    throw new Error(`the model was not loaded to keep layer ${layer}'s residuals on the GPU`);
  }
  const { outputs, batch, length, lengths } = await forwardBatch(handle, sequences);
  const tensor = outputs[residualOutputName(layer)];
  for (const other of Object.values(outputs)) if (other !== tensor) other.dispose();
  if (tensor.location !== "gpu-buffer") {
    tensor.dispose();
    throw new Error(`layer ${layer}'s residuals came back in ${tensor.location}`);
  }
  return {
    buffer: tensor.gpuBuffer as GPUBuffer,
    batch,
    length,
    dModel: tensor.dims[2],
    lengths,
    release: () => tensor.dispose(),
  };
}

/** The residual vector of sequence `b` at token `t` from a layer's [batch, length, dModel] array. */
export function vectorAt(result: ResidualBatch, layer: number, b: number, t: number): Float32Array {
  const data = result.byLayer.get(layer);
  if (!data) throw new Error(`layer ${layer} was not captured`);
  const start = (b * result.length + t) * result.dModel;
  return data.subarray(start, start + result.dModel);
}

/** Which tokens of each prompt to keep. */
export type PositionRule = { kind: "last" } | { kind: "all" } | { kind: "types"; types: readonly TokenType[] };

/** Residuals gathered over many prompts at the positions of a rule. */
export interface CollectedResiduals {
  /** Per layer: [prompts, positionsPerPrompt, dModel] for `last`/`types`, [totalTokens, dModel] for `all`. */
  byLayer: Map<number, Float32Array>;
  dModel: number;
  /** Token positions read, per prompt. */
  positions: number[][];
  /** For `all`: where each prompt's rows start (and the total at the end). */
  offsets: number[];
}

/** The token indices a rule reads from one prepared prompt. */
export function positionsFor(rule: PositionRule, prompt: PreparedPrompt): number[] {
  if (rule.kind === "last") return [prompt.ids.length - 1];
  if (rule.kind === "all") return prompt.ids.map((_, i) => i);
  return prompt.positions;
}

/**
 * Runs prepared prompts in batches and gathers residuals at `layers` and the rule's positions.
 * `onBatch` is told how many prompts each finished batch held (for progress).
 */
export async function collectResiduals(
  handle: ModelHandle,
  prompts: PreparedPrompt[],
  layers: number[],
  rule: PositionRule,
  batchSize: number,
  onBatch: (done: number) => void = () => {},
): Promise<CollectedResiduals> {
  const positions = prompts.map((p) => positionsFor(rule, p));
  const offsets = [0];
  for (const p of positions) offsets.push(offsets.at(-1)! + p.length);
  const rows = offsets.at(-1)!;
  const dModel = Number(handle.config.hidden_size);
  const byLayer = new Map(layers.map((l) => [l, new Float32Array(rows * dModel)]));
  for (let start = 0; start < prompts.length; start += batchSize) {
    const batch = prompts.slice(start, start + batchSize);
    const result = await residuals(handle, batch.map((p) => p.ids), layers);
    batch.forEach((_, b) => {
      positions[start + b].forEach((t, k) => {
        for (const layer of layers) {
          byLayer.get(layer)!.set(vectorAt(result, layer, b, t), (offsets[start + b] + k) * dModel);
        }
      });
    });
    onBatch(batch.length);
  }
  return { byLayer, dModel, positions, offsets };
}
