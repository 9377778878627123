/**
 * Cosine similarity matrices on the GPU (shaders/cosine_matrix.wgsl) and the reductions the layer
 * sweep reads from them.
 *
 * @module
 */

import { UserError } from "../errors.ts";
import type { Gpu } from "../gpu.ts";
import { dispatch, pipeline, readBack, storageBuffer, uniformBuffer } from "./shader.ts";

/** A cosine matrix and its sweep reductions. */
export interface CosineResult {
  /** [n, m]: cos(a_i, b_j). */
  matrix: Float32Array;
  /** Mean of cos(a_i, a_j) over i < j. */
  meanUpperA: number;
  /** Mean of cos(b_i, b_j) over i < j. */
  meanUpperB: number;
  /** Mean of the whole a-b matrix. */
  meanCross: number;
}

/** cos(x_i, y_j) for row sets x [n, d] and y [m, d]. */
export async function cosine(
  gpu: Gpu,
  x: Float32Array,
  n: number,
  y: Float32Array,
  m: number,
  d: number,
): Promise<Float32Array> {
  if (x.length !== n * d || y.length !== m * d) throw new Error("cosine: shapes do not match the data");
  for (const v of [x, y]) {
    if (v.some((z) => !Number.isFinite(z))) throw new UserError("activations contain NaN or infinite values");
  }
  const a = storageBuffer(gpu, x);
  const b = storageBuffer(gpu, y);
  const out = storageBuffer(gpu, n * m * 4, true);
  const params = uniformBuffer(gpu, [n, m, d, 0]);
  const encoder = gpu.device.createCommandEncoder();
  dispatch(gpu, encoder, await pipeline(gpu, "cosine_matrix"), [a, b, out, params], [
    Math.ceil(m / 8),
    Math.ceil(n / 8),
  ]);
  const matrix = await readBack(gpu, encoder, out, n * m * 4);
  for (const buffer of [a, b, out, params]) buffer.destroy();
  return matrix;
}

function meanUpper(matrix: Float32Array, n: number): number {
  let sum = 0;
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) sum += matrix[i * n + j];
  return sum / (n * (n - 1) / 2);
}

/**
 * The sweep's three matrices (a·a, b·b, a·b) reduced as the notebook does: within-group means over
 * the strict upper triangle, the cross mean over the whole matrix (reductions in f64 on the host).
 */
export async function cosineMatrix(
  gpu: Gpu,
  a: Float32Array,
  n: number,
  b: Float32Array,
  m: number,
  d: number,
): Promise<CosineResult> {
  const matrix = await cosine(gpu, a, n, b, m, d);
  const aa = await cosine(gpu, a, n, a, n, d);
  const bb = await cosine(gpu, b, m, b, m, d);
  return {
    matrix,
    meanUpperA: meanUpper(aa, n),
    meanUpperB: meanUpper(bb, m),
    meanCross: matrix.reduce((s, v) => s + v, 0) / (n * m),
  };
}
