/**
 * The role-swap layer sweep: per layer, cosine similarities within and across the normal and swapped
 * prompt sets (on the GPU, or the CPU without one) and the contrast vector mean(normal) − mean(swapped).
 *
 * @module
 */

import type { CollectedResiduals } from "../runtime/activations.ts";
import type { Gpu } from "../backend/gpu.ts";
import { cosineMatrix } from "../kernels/cosine_matrix.ts";

/** One layer's cosine-similarity summary, as the sweep table has it. */
export interface LayerSimilarity {
  layer: number;
  avgWithin: number;
  avgCross: number;
  difference: number;
  avgNormalNormal: number;
  avgSwappedSwapped: number;
}

/** Everything the sweep finds. */
export interface SweepResult {
  rows: LayerSimilarity[];
  /** Per layer: mean(normal) − mean(swapped), and the two means. */
  contrast: Map<number, Float32Array>;
  normalMean: Map<number, Float32Array>;
  swappedMean: Map<number, Float32Array>;
}

/** Column means of an [n, d] matrix, accumulated in f64. */
export function meanRows(data: Float32Array, n: number, d: number): Float64Array {
  const mean = new Float64Array(d);
  for (let r = 0; r < n; r++) for (let i = 0; i < d; i++) mean[i] += data[r * d + i];
  return mean.map((x) => x / n);
}

/**
 * Runs the sweep over `layers` from residuals with one read position per prompt. Within-group
 * averages are over the strict upper triangle, the cross average over the whole matrix, within =
 * mean of the two, difference = within − cross (the notebook's definitions). Cosines run on `gpu`, or
 * on the CPU without one.
 */
export async function sweepLayers(
  gpu: Gpu | undefined,
  normal: CollectedResiduals,
  swapped: CollectedResiduals,
  layers: readonly number[],
): Promise<SweepResult> {
  const d = normal.dModel;
  const n = normal.offsets.at(-1)!;
  const m = swapped.offsets.at(-1)!;
  const result: SweepResult = { rows: [], contrast: new Map(), normalMean: new Map(), swappedMean: new Map() };
  for (const layer of layers) {
    const a = normal.byLayer.get(layer)!;
    const b = swapped.byLayer.get(layer)!;
    const cosine = await cosineMatrix(gpu, a, n, b, m, d);
    const avgNormalNormal = cosine.meanUpperA;
    const avgSwappedSwapped = cosine.meanUpperB;
    const avgWithin = (avgNormalNormal + avgSwappedSwapped) / 2;
    result.rows.push({
      layer,
      avgWithin,
      avgCross: cosine.meanCross,
      difference: avgWithin - cosine.meanCross,
      avgNormalNormal,
      avgSwappedSwapped,
    });
    const normalMean = meanRows(a, n, d);
    const swappedMean = meanRows(b, m, d);
    result.normalMean.set(layer, Float32Array.from(normalMean));
    result.swappedMean.set(layer, Float32Array.from(swappedMean));
    result.contrast.set(layer, Float32Array.from(normalMean, (x, i) => x - swappedMean[i]));
  }
  return result;
}
