/**
 * CPU encode rows of `deno task bench`: our CPU SAE encoder (lib/sae/encode_cpu.ts: onnxruntime-node's
 * MatMul, then bias, activation and statistics in TypeScript) against onnxruntime-node's bare MatMul
 * on the same inputs, weights resident for both (the same Float32Array each run), at diff-batch row
 * counts (3 read positions x 32 prompts = 96 rows).
 *
 * @module
 */

import * as ort from "onnxruntime-node";
import { SeededRandom } from "../core/random.ts";
import type { Sae } from "../sae/config.ts";
import { CpuSaeEncoder } from "../encoders/cpu.ts";
import { FeatureStats } from "../features/stats.ts";
import { type EncodeShape, matmulModel, shapeLabel } from "./matmul.ts";
import { type BenchSection, interleavedMedians } from "./table.ts";

/**
 * Rows per shape: our encode, our encode + statistics, and ORT-node's MatMul (the baseline), in
 * GFLOP/s of the matmul.
 */
export async function cpuEncodeSection(shapes: EncodeShape[], reps: number): Promise<BenchSection> {
  const session = await ort.InferenceSession.create(matmulModel("f32"));
  const section: BenchSection = { title: "CPU encode", versus: "ORT-node MatMul", rows: [] };
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
    const measure = shapeLabel(shape);
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
    section.rows.push(
      { measure, peer: "ORT-node MatMul", value: gflops(matmul), unit: "GFLOP/s" },
      { measure, peer: "ours: encode (JumpReLU, ~1% active)", value: gflops(encode), unit: "GFLOP/s" },
      { measure, peer: "ours: encode + statistics", value: gflops(withStats), unit: "GFLOP/s" },
    );
  }
  await session.release();
  return section;
}
