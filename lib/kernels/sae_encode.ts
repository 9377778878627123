/**
 * SAE encoding on the GPU (shaders/sae_encode.wgsl), with the feature statistics of each batch
 * computed straight after on the GPU (shaders/feature_stats.wgsl) so only small partials come back.
 *
 * W_enc is uploaded once, split into column chunks that each fit the adapter's
 * maxStorageBufferBindingSize (a 4096 x 131072 f32 encoder is 2 GiB; Mesa allows 128 MiB per
 * binding); only one chunk is ever copied in JS memory besides the SAE's own weights.
 *
 * @module
 */

import { UserError } from "../errors.ts";
import type { Gpu } from "../gpu.ts";
import type { Sae } from "../sae/config.ts";
import type { FeatureStats } from "../stats.ts";
import { featureStatsPartials } from "./feature_stats.ts";
import { dispatch, pipeline, readBack, storageBuffer, uniformBuffer } from "./shader.ts";

const ACTIVATION_CODE = { none: 0, relu: 1, jumprelu: 2 } as const;

interface Chunk {
  offset: number;
  cols: number;
  weights: GPUBuffer;
  bias: GPUBuffer;
  threshold: GPUBuffer;
}

/** Options of {@linkcode SaeEncoder.create}. */
export interface EncoderOptions {
  /** Largest W_enc chunk in bytes (default: the adapter's binding limit). */
  maxChunkBytes?: number;
}

/** An SAE's encoder resident on the GPU. */
export class SaeEncoder {
  private constructor(
    readonly gpu: Gpu,
    readonly sae: Sae,
    private readonly chunks: Chunk[],
  ) {}

  /** Uploads `sae`'s encoder in chunks. */
  static async create(gpu: Gpu, sae: Sae, options: EncoderOptions = {}): Promise<SaeEncoder> {
    await pipeline(gpu, "sae_encode");
    await pipeline(gpu, "feature_stats");
    const { dIn, dSae } = sae.config;
    const limit = Math.min(options.maxChunkBytes ?? Infinity, gpu.maxStorageBufferBindingSize, gpu.maxBufferSize);
    const perChunk = Math.max(64, Math.floor(limit / (dIn * 4) / 64) * 64);
    const chunks: Chunk[] = [];
    for (let offset = 0; offset < dSae; offset += perChunk) {
      const cols = Math.min(perChunk, dSae - offset);
      const block = new Float32Array(dIn * cols);
      for (let i = 0; i < dIn; i++) block.set(sae.wEnc.subarray(i * dSae + offset, i * dSae + offset + cols), i * cols);
      chunks.push({
        offset,
        cols,
        weights: storageBuffer(gpu, block),
        bias: storageBuffer(gpu, sae.bEnc.subarray(offset, offset + cols)),
        threshold: storageBuffer(gpu, sae.threshold.subarray(offset, offset + cols)),
      });
    }
    return new SaeEncoder(gpu, sae, chunks);
  }

  /** How many chunks W_enc was split into. */
  get chunkCount(): number {
    return this.chunks.length;
  }

  /** The encoder's input: finite-checked, b_dec subtracted where the format says. */
  #input(x: Float32Array, rows: number): GPUBuffer {
    const { dIn, applyBDecToInput } = this.sae.config;
    if (x.length !== rows * dIn) throw new Error(`expected ${rows} x ${dIn} inputs, got ${x.length}`);
    for (let i = 0; i < x.length; i++) {
      if (!Number.isFinite(x[i])) {
        throw new UserError(
          `input row ${Math.floor(i / dIn)} contains NaN or infinite values: the model's residuals overflowed`,
        );
      }
    }
    let input = x;
    if (applyBDecToInput) input = x.map((v, i) => v - this.sae.bDec[i % dIn]);
    return storageBuffer(this.gpu, input);
  }

  async #runChunk(input: GPUBuffer, rows: number, chunk: Chunk, activation: keyof typeof ACTIVATION_CODE) {
    const out = storageBuffer(this.gpu, rows * chunk.cols * 4, true);
    const params = uniformBuffer(this.gpu, [rows, this.sae.config.dIn, chunk.cols, ACTIVATION_CODE[activation]]);
    const encoder = this.gpu.device.createCommandEncoder();
    dispatch(this.gpu, encoder, await pipeline(this.gpu, "sae_encode"), [
      input,
      chunk.weights,
      chunk.bias,
      chunk.threshold,
      out,
      params,
    ], [
      Math.ceil(chunk.cols / 64),
      Math.ceil(rows / 64),
    ]);
    return { out, params, encoder };
  }

  /** Feature activations of `rows` input vectors ([rows, dIn] row-major): [rows, dSae]. */
  async encode(x: Float32Array, rows: number): Promise<Float32Array> {
    const { dSae, architecture, k } = this.sae.config;
    const input = this.#input(x, rows);
    const result = new Float32Array(rows * dSae);
    const activation = architecture === "topk" ? "none" : architecture;
    for (const chunk of this.chunks) {
      const { out, params, encoder } = await this.#runChunk(input, rows, chunk, activation);
      const values = await readBack(this.gpu, encoder, out, rows * chunk.cols * 4);
      for (let r = 0; r < rows; r++) {
        result.set(values.subarray(r * chunk.cols, (r + 1) * chunk.cols), r * dSae + chunk.offset);
      }
      out.destroy();
      params.destroy();
    }
    input.destroy();
    // Top-k needs whole rows, which span chunks: it is applied here, on the pre-activations.
    if (architecture === "topk") {
      for (let r = 0; r < rows; r++) keepTopK(result.subarray(r * dSae, (r + 1) * dSae), k ?? 0);
    }
    return result;
  }

  /**
   * Encodes `rows` vectors and adds their statistics to `stats`; `rowType[r]` is row r's token type
   * index. Activations stay on the GPU; only [types, 9, chunk] partials are read back per chunk.
   */
  async encodeInto(x: Float32Array, rows: number, rowType: Uint32Array, stats: FeatureStats): Promise<void> {
    const types = stats.tokenTypes.length;
    const perType = new Float64Array(types);
    for (const t of rowType) perType[t]++;
    if (this.sae.config.architecture === "topk") {
      await this.accumulate(await this.encode(x, rows), rows, rowType, stats);
      return;
    }
    const input = this.#input(x, rows);
    const rowTypes = storageBuffer(this.gpu, rowType);
    for (const chunk of this.chunks) {
      const { out, params, encoder } = await this.#runChunk(
        input,
        rows,
        chunk,
        this.sae.config.architecture as "relu" | "jumprelu",
      );
      const partial = await featureStatsPartials(this.gpu, encoder, out, rowTypes, rows, chunk.cols, types);
      stats.addPartials(partial, chunk.offset, chunk.cols, perType);
      out.destroy();
      params.destroy();
    }
    stats.addCounts(perType);
    input.destroy();
    rowTypes.destroy();
  }

  /** Adds already-encoded activations ([rows, dSae]) to `stats` with the statistics kernel. */
  async accumulate(features: Float32Array, rows: number, rowType: Uint32Array, stats: FeatureStats): Promise<void> {
    const { dSae } = this.sae.config;
    const types = stats.tokenTypes.length;
    const perType = new Float64Array(types);
    for (const t of rowType) perType[t]++;
    const rowTypes = storageBuffer(this.gpu, rowType);
    for (const chunk of this.chunks) {
      const block = new Float32Array(rows * chunk.cols);
      for (let r = 0; r < rows; r++) {
        block.set(features.subarray(r * dSae + chunk.offset, r * dSae + chunk.offset + chunk.cols), r * chunk.cols);
      }
      const buffer = storageBuffer(this.gpu, block);
      const partial = await featureStatsPartials(
        this.gpu,
        this.gpu.device.createCommandEncoder(),
        buffer,
        rowTypes,
        rows,
        chunk.cols,
        types,
      );
      stats.addPartials(partial, chunk.offset, chunk.cols, perType);
      buffer.destroy();
    }
    stats.addCounts(perType);
    rowTypes.destroy();
  }

  /** Frees the GPU buffers. */
  destroy(): void {
    for (const chunk of this.chunks) {
      chunk.weights.destroy();
      chunk.bias.destroy();
      chunk.threshold.destroy();
    }
  }
}

/** Keeps the k largest (ReLU'd) values of a row, zeroing the rest; ties go to the lower index. */
export function keepTopK(row: Float32Array, k: number): void {
  const order = Array.from(row.keys()).sort((a, b) => row[b] - row[a] || a - b);
  const keep = new Set(order.slice(0, k));
  for (let j = 0; j < row.length; j++) row[j] = keep.has(j) ? Math.max(0, row[j]) : 0;
}
