/**
 * Cosine similarity matrices on the GPU (shaders/cosine_matrix.wgsl) and the reductions the layer
 * sweep reads from them.
 *
 * @module
 */

import { UserError } from "../core/errors.ts";
import type { Gpu } from "../backend/gpu_info.ts";
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

function checkInputs(x: Float32Array, n: number, y: Float32Array, m: number, d: number): void {
  if (x.length !== n * d || y.length !== m * d) throw new Error("cosine: shapes do not match the data");
  for (const v of [x, y]) {
    if (v.some((z) => !Number.isFinite(z))) throw new UserError("activations contain NaN or infinite values");
  }
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
  checkInputs(x, n, y, m, d);
  const a = storageBuffer(gpu, x);
  const b = storageBuffer(gpu, y);
  const out = storageBuffer(gpu, n * m * 4, true);
  const params = uniformBuffer(gpu, [n, m, d, 0]);
  const commands = gpu.device.createCommandEncoder();
  dispatch(gpu, commands, await pipeline(gpu, "cosine_matrix"), [a, b, out, params], [
    Math.ceil(m / 8),
    Math.ceil(n / 8),
  ]);
  const matrix = await readBack(gpu, commands, out, n * m * 4);
  for (const buffer of [a, b, out, params]) buffer.destroy();
  return matrix;
}

function meanUpper(matrix: Float32Array, n: number): number {
  let sum = 0;
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) sum += matrix[i * n + j];
  return sum / (n * (n - 1) / 2);
}

/**
 * cos(x_i, y_j) on the CPU, in f64 (rounded to f32 like the kernel's output): the sweep's few prompts
 * need no GPU, and a run without one (`--device cpu`, or auto on a software adapter) must not ask for it.
 */
export function cosineHost(x: Float32Array, n: number, y: Float32Array, m: number, d: number): Float32Array {
  checkInputs(x, n, y, m, d);
  const norm = (v: Float32Array, rows: number) =>
    Float64Array.from({ length: rows }, (_, i) => {
      let s = 0;
      for (let k = 0; k < d; k++) s += v[i * d + k] * v[i * d + k];
      return Math.sqrt(s);
    });
  const [nx, ny] = [norm(x, n), norm(y, m)];
  const out = new Float32Array(n * m);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < m; j++) {
      let dot = 0;
      for (let k = 0; k < d; k++) dot += x[i * d + k] * y[j * d + k];
      out[i * m + j] = dot / (nx[i] * ny[j]);
    }
  }
  return out;
}

/**
 * The sweep's three matrices (a·a, b·b, a·b) reduced as the notebook does: within-group means over
 * the strict upper triangle, the cross mean over the whole matrix (reductions in f64 on the host).
 * Without a GPU the matrices are computed on the CPU ({@linkcode cosineHost}).
 */
export async function cosineMatrix(
  gpu: Gpu | undefined,
  a: Float32Array,
  n: number,
  b: Float32Array,
  m: number,
  d: number,
): Promise<CosineResult> {
  const cos = (x: Float32Array, rows: number, y: Float32Array, cols: number) =>
    gpu ? cosine(gpu, x, rows, y, cols, d) : Promise.resolve(cosineHost(x, rows, y, cols, d));
  const matrix = await cos(a, n, b, m);
  const aa = await cos(a, n, a, n);
  const bb = await cos(b, m, b, m);
  return {
    matrix,
    meanUpperA: meanUpper(aa, n),
    meanUpperB: meanUpper(bb, m),
    meanCross: matrix.reduce((s, v) => s + v, 0) / (n * m),
  };
}
