/**
 * An SAE encoder on either device, behind one interface: collection and the bench call it the same
 * way whether the encode runs in our WGSL kernels (lib/kernels/sae_encode.ts) or on onnxruntime-node's
 * CPU MatMul (./encode_cpu.ts).
 *
 * @module
 */

import type { Device } from "../device.ts";
import { acquireGpu } from "../gpu.ts";
import { SaeEncoder } from "../kernels/sae_encode.ts";
import { nonFiniteRow } from "../kernels/sae_input.ts";
import type { FeatureStats } from "../stats.ts";
import type { RowExamples } from "../top_examples.ts";
import type { Sae } from "./config.ts";
import { CpuSaeEncoder } from "./encode_cpu.ts";

/** What collection needs from an encoder, on any device. */
export interface FeatureEncoder {
  readonly sae: Sae;
  /** Feature activations of `rows` input vectors ([rows, dIn] row-major): [rows, dSae]. */
  encode(x: Float32Array, rows: number): Promise<Float32Array>;
  /**
   * Encodes `rows` vectors and adds their statistics to `stats`; `rowType[r]` is row r's token type.
   * With `examples`, each row's positive activations are also offered to its feature's top examples,
   * as coming from prompt `examples.promptOfRow[r]`; they reach `examples` at the latest at
   * {@linkcode FeatureEncoder.flush}.
   */
  encodeInto(
    x: Float32Array,
    rows: number,
    rowType: Uint32Array,
    stats: FeatureStats,
    examples?: RowExamples,
  ): Promise<void>;
  /**
   * Present where encoding runs on the process's shared GPU device: encodes rows gathered on the device
   * from `source` (a model's residual output kept there), row r being the `dIn` floats from float
   * `rowStarts[r]`. Statistics reach `stats` (and top examples `examples`) at the latest at
   * {@linkcode FeatureEncoder.flush}.
   */
  encodeGatheredInto?(
    source: GPUBuffer,
    rowStarts: readonly number[],
    rowType: Uint32Array,
    stats: FeatureStats,
    examples?: RowExamples,
  ): Promise<void>;
  /** Adds statistics (and top examples) still held on the device into their records (none on the CPU). */
  flush(): Promise<void>;
  /** Frees what the encoder holds (GPU buffers, the ORT session). */
  destroy(): void;
}

/** An encoder for `sae` on `device` (WebGPU: the process's GPU, acquired on first use). */
export async function createEncoder(
  sae: Sae,
  device: Device,
  options: { log?: (line: string) => void } = {},
): Promise<FeatureEncoder> {
  if (device === "cpu") return await CpuSaeEncoder.create(sae);
  return await SaeEncoder.create(await acquireGpu({ log: options.log }), sae);
}

/**
 * The encoder's input for `rows` vectors: every value checked finite (a model whose residuals
 * overflowed is named, not encoded into garbage), b_dec subtracted where the format says. Returns `x`
 * itself when there is nothing to subtract.
 */
export function encoderInput(sae: Sae, x: Float32Array, rows: number): Float32Array {
  const { dIn, applyBDecToInput } = sae.config;
  if (x.length !== rows * dIn) throw new Error(`expected ${rows} x ${dIn} inputs, got ${x.length}`);
  for (let i = 0; i < x.length; i++) {
    if (!Number.isFinite(x[i])) {
      throw nonFiniteRow(Math.floor(i / dIn));
    }
  }
  return applyBDecToInput ? x.map((v, i) => v - sae.bDec[i % dIn]) : x;
}
