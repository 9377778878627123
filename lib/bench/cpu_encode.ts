/**
 * CPU encode rows of `deno task bench`: our CPU SAE encoder (lib/sae/encode_cpu.ts: onnxruntime-node's
 * MatMul, then bias, activation and statistics in TypeScript) against onnxruntime-node's bare MatMul
 * on the same inputs, weights resident for both (the same Float32Array each run), at diff-batch row
 * counts (3 read positions x 32 prompts = 96 rows).
 *
 * @module
 */

import * as ort from "onnxruntime-node";
import { GraphBuilder } from "../graph/builder.ts";
import { DataType, encodeModel } from "../graph/onnx.ts";
import { SeededRandom } from "../core/random.ts";
import type { Sae } from "../sae/config.ts";
import { CpuSaeEncoder } from "../encoders/cpu.ts";
import { FeatureStats } from "../features/stats.ts";
import { type BenchRow, interleavedMedians } from "./table.ts";

/** A bench shape: rows x d_in x d_sae. */
export interface EncodeShape {
  name: string;
  rows: number;
  dIn: number;
  dSae: number;
}

/** Small shapes (seconds) and the seed's (Gemma 2 2B + Gemma Scope 16k; Llama 3.1 8B + Llama Scope 131k). */
export const CPU_ENCODE_SHAPES: Record<"small" | "realistic", EncodeShape[]> = {
  small: [{ name: "small", rows: 96, dIn: 512, dSae: 16384 }],
  realistic: [
    { name: "gemma-2-2b/16k", rows: 96, dIn: 2304, dSae: 16384 },
    { name: "llama-8b/131k", rows: 96, dIn: 4096, dSae: 131072 },
  ],
};

function matmulModel(): Uint8Array {
  const b = new GraphBuilder();
  const x = b.input({ name: "x", elemType: DataType.FLOAT, dims: ["n", "k"] });
  const w = b.input({ name: "w", elemType: DataType.FLOAT, dims: ["k", "m"] });
  b.output(b.op("MatMul", [x, w]), { name: "y", elemType: DataType.FLOAT, dims: ["n", "m"] });
  return encodeModel(b.build("matmul"));
}

/** Rows per shape: our encode, our encode + statistics, and ORT-node's MatMul, in GFLOP/s of the matmul. */
export async function cpuEncodeRows(shapes: EncodeShape[], reps: number): Promise<BenchRow[]> {
  const session = await ort.InferenceSession.create(matmulModel());
  const rows: BenchRow[] = [];
  for (const shape of shapes) {
    const random = new SeededRandom(1);
    const sae: Sae = {
      config: {
        format: "saelens",
        architecture: "jumprelu",
        dIn: shape.dIn,
        dSae: shape.dSae,
        applyBDecToInput: false,
        source: "bench",
      },
      wEnc: random.normals(shape.dIn * shape.dSae, 1 / Math.sqrt(shape.dIn)),
      bEnc: new Float32Array(shape.dSae),
      wDec: new Float32Array(0),
      bDec: new Float32Array(shape.dIn),
      // Pre-activations are about N(0, 1): thresholds near 2.33 leave ~1% of features active, about the
      // sparsity of trained SAEs (L0 of tens to hundreds of 16k-131k features).
      threshold: Float32Array.from({ length: shape.dSae }, () => 2.3 + 0.1 * random.uniform()),
    };
    const x = random.normals(shape.rows * shape.dIn);
    const gflops = (seconds: number) => (2 * shape.rows * shape.dIn * shape.dSae) / seconds / 1e9;
    const measure = `${shape.name} ${shape.rows}x${shape.dIn}x${shape.dSae}`;
    const encoder = await CpuSaeEncoder.create(sae);
    const stats = FeatureStats.empty(["a", "b", "c"], shape.dSae);
    const rowType = Uint32Array.from({ length: shape.rows }, (_, i) => i % 3);
    const xs = new ort.Tensor("float32", x, [shape.rows, shape.dIn]);
    const ws = new ort.Tensor("float32", sae.wEnc, [shape.dIn, shape.dSae]);
    // Interleaved, so load from other processes on a shared machine falls on every peer alike.
    const [matmul, encode, withStats] = await interleavedMedians(reps, [
      () => session.run({ x: xs, w: ws }),
      () => encoder.encode(x, shape.rows),
      () => encoder.encodeInto(x, shape.rows, rowType, stats),
    ]);
    encoder.destroy();
    rows.push(
      { measure, peer: "ORT-node MatMul", value: gflops(matmul), unit: "GFLOP/s" },
      { measure, peer: "ours: encode (JumpReLU, ~1% active)", value: gflops(encode), unit: "GFLOP/s" },
      { measure, peer: "ours: encode + statistics", value: gflops(withStats), unit: "GFLOP/s" },
    );
  }
  await session.release();
  return rows;
}
