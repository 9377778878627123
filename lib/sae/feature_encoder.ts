/**
 * What collection needs from an SAE encoder on any device, and the input checks every encoder makes:
 * the GPU encoder (lib/kernels/sae_encode.ts) and the CPU one (lib/encoders/cpu.ts) implement it.
 *
 * @module
 */

import { NonFiniteInputError, type UserError } from "../core/errors.ts";
import type { FeatureStats } from "../features/stats.ts";
import type { RowExamples } from "../features/top_examples.ts";
import type { Sae } from "./config.ts";

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

/** Checks that `x` holds `rows` input vectors of the SAE's width (a caller's bug otherwise, not a user's). */
export function checkInputShape(sae: Sae, x: Float32Array, rows: number): void {
  const { dIn } = sae.config;
  if (x.length !== rows * dIn) throw new Error(`expected ${rows} x ${dIn} inputs, got ${x.length}`);
}

/** The groups of at most `size` of `rows` rows an encoder runs one after another: [first row, count]. */
export function* rowGroups(rows: number, size: number): Generator<[number, number]> {
  for (let from = 0; from < rows; from += size) yield [from, Math.min(size, rows - from)];
}

/**
 * The encoder's input for `rows` vectors: every value checked finite (a model whose residuals
 * overflowed is named, not encoded into garbage), b_dec subtracted where the format says. Returns `x`
 * itself when there is nothing to subtract.
 */
export function encoderInput(sae: Sae, x: Float32Array, rows: number): Float32Array {
  const { dIn, applyBDecToInput } = sae.config;
  checkInputShape(sae, x, rows);
  for (let i = 0; i < x.length; i++) {
    if (!Number.isFinite(x[i])) {
      throw nonFiniteRow(Math.floor(i / dIn));
    }
  }
  return applyBDecToInput ? x.map((v, i) => v - sae.bDec[i % dIn]) : x;
}

/** The error of an input row holding NaN or infinity (row `row` of what the caller passed). */
export function nonFiniteRow(row: number): UserError {
  return new NonFiniteInputError(row);
}
