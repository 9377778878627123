/**
 * Per-batch feature statistics on the GPU (shaders/feature_stats.wgsl), run on activations that are
 * already in a GPU buffer (straight after encoding), so only [types, 9, cols] partials come back.
 *
 * @module
 */

import type { Gpu } from "../gpu.ts";
import { PARTIAL_ROWS } from "../stats.ts";
import { dispatch, pipeline, readBack, storageBuffer, uniformBuffer } from "./shader.ts";

/**
 * Appends the statistics pass over `features` ([rows, cols]) to `encoder`, submits it and returns the
 * partials ([types, 9, cols]: shifted sums, max, active count/sums, active min, the two shifts) that
 * FeatureStats.addPartials takes.
 */
export async function featureStatsPartials(
  gpu: Gpu,
  encoder: GPUCommandEncoder,
  features: GPUBuffer,
  rowTypes: GPUBuffer,
  rows: number,
  cols: number,
  types: number,
): Promise<Float32Array> {
  const partial = storageBuffer(gpu, types * PARTIAL_ROWS * cols * 4, true);
  const params = uniformBuffer(gpu, [rows, cols, types, 0]);
  dispatch(gpu, encoder, await pipeline(gpu, "feature_stats"), [features, rowTypes, partial, params], [
    Math.ceil(cols / 64),
    types,
  ]);
  const values = await readBack(gpu, encoder, partial, types * PARTIAL_ROWS * cols * 4);
  partial.destroy();
  params.destroy();
  return values;
}
