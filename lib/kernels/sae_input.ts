/**
 * The SAE encoder's input rows, prepared on the GPU (shaders/sae_input.wgsl): checked finite and b_dec
 * subtracted where the SAE's format applies it, in the padded buffer the encode kernel reads. Rows
 * uploaded from the host and rows gathered from a model's residual buffer on the device take the same
 * pass, so both paths encode bit-identical inputs.
 *
 * @module
 */

import type { Gpu } from "../backend/gpu_info.ts";
import { dispatch, pipeline, uniformBuffer } from "./shader.ts";

/** Workgroups per dispatch dimension that every adapter allows. */
const MAX_GROUPS = 65535;

/** Value of a `bad` word that no non-finite row has lowered. */
export const NO_BAD_ROW = 0xffffffff;

/**
 * Appends the preparation of `x` ([rows, inner], the first `dIn` columns real) to `encoder`: the
 * lowest row with a NaN or infinity is written to word `slot` of `bad` (which must hold
 * {@linkcode NO_BAD_ROW} beforehand), and `bDec` is subtracted when `subtract` is set. Returns the
 * uniform buffer it made, to destroy once the work is submitted.
 */
export async function encodePrepareInput(
  gpu: Gpu,
  encoder: GPUCommandEncoder,
  buffers: { x: GPUBuffer; bDec: GPUBuffer; bad: GPUBuffer },
  shape: { rows: number; dIn: number; inner: number },
  options: { subtract: boolean; slot: number },
): Promise<GPUBuffer> {
  const params = uniformBuffer(gpu, [shape.rows, shape.dIn, shape.inner, options.subtract ? 1 : 0, options.slot]);
  dispatch(gpu, encoder, await pipeline(gpu, "sae_input"), [buffers.x, buffers.bDec, buffers.bad, params], [
    Math.ceil(shape.dIn / 64),
    Math.min(shape.rows, MAX_GROUPS),
    Math.ceil(shape.rows / MAX_GROUPS),
  ]);
  return params;
}
