/**
 * Encoding paired residuals with a crosscoder, in our WGSL SAE encoder: a crosscoder's encoder is an
 * SAE encoder of the concatenation [x_base, x_chat] (d_in = 2·d_model, W_enc's [2, d, dict] bytes
 * read as [2d, dict]). This module is the only place crosscoders reach the SAE encoder.
 *
 * BatchTopK at inference (dictionary_learning `BatchTopKCrossCoder.encode`, `use_threshold=True`, its
 * default): f_j = relu(pre_j) · [relu(pre_j) · c_j > t], with c_j the code normalization and t the
 * learned scalar threshold. For t ≥ 0 this is exactly a JumpReLU with the per-latent threshold
 * t / c_j (f_j = pre_j · [pre_j > t / c_j]): pre_j > t/c_j ≥ 0 makes relu(pre_j) = pre_j, and
 * pre_j ≤ t/c_j gives relu(pre_j) · c_j ≤ t. A latent with c_j = 0 never fires (threshold: the
 * largest f32). t < 0 (a threshold never calibrated, dictionary_learning's initial −1) lets every
 * relu(pre) through: plain ReLU.
 *
 * @module
 */

import type { Gpu } from "../../backend/gpu_info.ts";
import { GpuSaeEncoder } from "../../kernels/sae_encode.ts";
import type { Sae } from "../../sae/config.ts";
import type { FeatureStats } from "../../features/stats.ts";
import { codeNormalization, type Crosscoder } from "./config.ts";

const F32_MAX = 3.4028234663852886e38;

/** The per-latent JumpReLU thresholds equivalent to BatchTopK's rule, or undefined for ReLU. */
export function batchTopKThresholds(cc: Crosscoder): Float32Array | undefined {
  const t = cc.config.threshold;
  if (cc.config.architecture !== "batchtopk" || t === undefined || t < 0) return undefined;
  return Float32Array.from(codeNormalization(cc), (c) => (c > 0 ? Math.min(t / c, F32_MAX) : F32_MAX));
}

/** The SAE view of a crosscoder: the encoder of [x_base, x_chat] and the decoder [dict, 2d]. */
export function crosscoderSae(cc: Crosscoder): Sae {
  const { dModel, dict } = cc.config;
  const thresholds = batchTopKThresholds(cc);
  const wDec = new Float32Array(dict * 2 * dModel);
  for (let m = 0; m < 2; m++) {
    for (let j = 0; j < dict; j++) {
      wDec.set(cc.wDec.subarray((m * dict + j) * dModel, (m * dict + j + 1) * dModel), (j * 2 + m) * dModel);
    }
  }
  return {
    config: {
      // SaeFormat names file formats; this view is never written or loaded as an SAE, and its
      // orientation is SAELens's (W_enc [d_in, d_sae]).
      format: "saelens",
      architecture: thresholds ? "jumprelu" : "relu",
      dIn: 2 * dModel,
      dSae: dict,
      applyBDecToInput: false,
      hookLayer: cc.config.hookLayer,
      source: cc.config.source,
    },
    wEnc: cc.wEnc,
    bEnc: cc.bEnc,
    wDec,
    bDec: cc.bDec,
    threshold: thresholds ?? new Float32Array(dict),
  };
}

/** [rows, 2d]: each row the base residual followed by the chat residual of the same token. */
export function pairRows(base: Float32Array, chat: Float32Array, rows: number, dModel: number): Float32Array {
  if (base.length !== rows * dModel || chat.length !== rows * dModel) {
    throw new Error(`expected ${rows} x ${dModel} residuals from each model, got ${base.length} and ${chat.length}`);
  }
  const out = new Float32Array(rows * 2 * dModel);
  for (let r = 0; r < rows; r++) {
    out.set(base.subarray(r * dModel, (r + 1) * dModel), 2 * r * dModel);
    out.set(chat.subarray(r * dModel, (r + 1) * dModel), (2 * r + 1) * dModel);
  }
  return out;
}

/** A crosscoder's encoder resident on the GPU. */
export class CrosscoderEncoder {
  private constructor(readonly crosscoder: Crosscoder, private readonly encoder: GpuSaeEncoder) {}

  /** Uploads the encoder of `cc`. */
  static async create(gpu: Gpu, cc: Crosscoder): Promise<CrosscoderEncoder> {
    return new CrosscoderEncoder(cc, await GpuSaeEncoder.create(gpu, crosscoderSae(cc)));
  }

  /** Latent activations [rows, dict] of paired residuals (each [rows, dModel], row r = one token). */
  encode(base: Float32Array, chat: Float32Array, rows: number): Promise<Float32Array> {
    return this.encoder.encode(pairRows(base, chat, rows, this.crosscoder.config.dModel), rows);
  }

  /** Encodes paired residuals and adds the activations' statistics to `stats` (row r of type rowType[r]). */
  encodeInto(
    base: Float32Array,
    chat: Float32Array,
    rows: number,
    rowType: Uint32Array,
    stats: FeatureStats,
  ): Promise<void> {
    return this.encoder.encodeInto(pairRows(base, chat, rows, this.crosscoder.config.dModel), rows, rowType, stats);
  }

  /** Frees the GPU buffers. */
  destroy(): void {
    this.encoder.destroy();
  }
}
