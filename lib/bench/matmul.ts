/**
 * What every encode peer of `deno task bench` shares: the shapes, the bare MatMul graph the
 * onnxruntime peers run, and random SAEs of a shape.
 *
 * @module
 */

import { GraphBuilder } from "../graph/builder.ts";
import { DataType, encodeModel } from "../graph/onnx.ts";
import { SeededRandom } from "../core/random.ts";
import type { Sae } from "../sae/config.ts";

/** A bench shape: rows x d_in x d_sae. */
export interface EncodeShape {
  name: string;
  rows: number;
  dIn: number;
  dSae: number;
}

/** How W_enc is stored for a run: as read, or with every weight an f16 (as an F16 file's are). */
export type Dtype = "f32" | "f16";

/**
 * The shapes by `--shapes` name. Row counts are a diff batch (3 token types x batch size 32) and a
 * capture-sized one; the realistic shapes are the seed's pairs (Gemma 2 2B + Gemma Scope 16k, Llama
 * 3.1 8B + Llama Scope 131k, whose f32 W_enc is 2 GiB and so must be chunked on every adapter).
 */
export const BENCH_SHAPES: Record<string, EncodeShape[]> = {
  small: [
    { name: "small", rows: 32, dIn: 512, dSae: 16384 },
    { name: "small", rows: 96, dIn: 512, dSae: 16384 },
  ],
  gemma: [{ name: "gemma-2-2b/16k", rows: 96, dIn: 2304, dSae: 16384 }],
  llama: [{ name: "llama-3.1-8b/131k", rows: 96, dIn: 4096, dSae: 131072 }],
};

/** The diff batch's row count: the CPU encode rows are measured at it only. */
export const DIFF_BATCH_ROWS = 96;

/** `rows x d_in x d_sae`, the way every table names a shape. */
export function shapeLabel(shape: EncodeShape): string {
  return `${shape.name} ${shape.rows}x${shape.dIn}x${shape.dSae}`;
}

/** A MatMul graph with both operands as inputs (so a 2 GiB weight needs no protobuf initializer). */
export function matmulModel(dtype: Dtype): Uint8Array {
  const elemType = dtype === "f16" ? DataType.FLOAT16 : DataType.FLOAT;
  const b = new GraphBuilder();
  const x = b.input({ name: "x", elemType, dims: ["n", "k"] });
  const w = b.input({ name: "w", elemType, dims: ["k", "m"] });
  b.output(b.op("MatMul", [x, w]), { name: "y", elemType, dims: ["n", "m"] });
  return encodeModel(b.build("matmul"));
}

/** The f16 bits of `values`, as onnxruntime's float16 tensors take them. */
export function f16Bits(values: Float32Array): Uint16Array {
  return new Uint16Array(new Float16Array(values).buffer);
}

/** A ReLU SAE of random f32 weights. */
export function randomSae(shape: EncodeShape): Sae {
  return {
    config: {
      format: "saelens",
      architecture: "relu",
      dIn: shape.dIn,
      dSae: shape.dSae,
      applyBDecToInput: false,
      source: "bench",
    },
    wEnc: new SeededRandom(1).normals(shape.dIn * shape.dSae, 1 / Math.sqrt(shape.dIn)),
    bEnc: new Float32Array(shape.dSae),
    wDec: new Float32Array(0),
    bDec: new Float32Array(shape.dIn),
    threshold: new Float32Array(shape.dSae),
  };
}

/**
 * Rounds every weight of W_enc to an f16 in place, as an F16 file's are (so the encoder keeps them as
 * f16); in place because a 131k-feature W_enc is 2 GiB and takes seconds to draw again.
 */
export function roundToF16(sae: Sae): void {
  const w = sae.wEnc;
  for (let i = 0; i < w.length; i++) w[i] = Math.f16round(w[i]);
}
