/**
 * Top-k per row on the GPU (shaders/top_k.wgsl): keeps the k largest values of each row (ReLU'd) and
 * zeroes the rest, ties going to the lower column, in place. TopK SAEs apply it to the pre-activations
 * of whole rows, which span W_enc's chunks, so no row has to come back to the host to be sorted.
 *
 * @module
 */

import type { Gpu } from "../backend/gpu_info.ts";
import { dispatch, pipeline, readBack, storageBuffer, uniformBuffer } from "./shader.ts";

/** Workgroups per dispatch dimension that every adapter allows. */
const MAX_GROUPS = 65535;

/**
 * Appends the top-k of each of the `rows` rows of `values` ([rows, cols] f32, in place) to `commands`.
 * Returns the uniform buffer it made, to destroy once the work is submitted.
 */
export async function encodeTopK(
  gpu: Gpu,
  commands: GPUCommandEncoder,
  values: GPUBuffer,
  rows: number,
  cols: number,
  k: number,
): Promise<GPUBuffer> {
  const params = uniformBuffer(gpu, [rows, cols, k, 0]);
  dispatch(gpu, commands, await pipeline(gpu, "top_k"), [values, params], [
    Math.min(rows, MAX_GROUPS),
    Math.ceil(rows / MAX_GROUPS),
  ]);
  return params;
}

/** The top-k of each row of `values` ([rows, cols]), computed on the GPU. */
export async function topK(
  gpu: Gpu,
  values: Float32Array,
  rows: number,
  cols: number,
  k: number,
): Promise<Float32Array> {
  if (values.length !== rows * cols) throw new Error(`expected ${rows} x ${cols} values, got ${values.length}`);
  const buffer = storageBuffer(gpu, values, true);
  const commands = gpu.device.createCommandEncoder();
  const params = await encodeTopK(gpu, commands, buffer, rows, cols, k);
  const result = await readBack(gpu, commands, buffer, values.byteLength);
  buffer.destroy();
  params.destroy();
  return result;
}
