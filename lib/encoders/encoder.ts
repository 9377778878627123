/**
 * An SAE encoder on either device, behind one interface ({@linkcode FeatureEncoder}): collection and
 * the bench call it the same way whether the encode runs in our WGSL kernels
 * (lib/kernels/sae_encode.ts) or on onnxruntime-node's CPU MatMul (./cpu.ts).
 *
 * @module
 */

import type { Device } from "../backend/device.ts";
import { acquireGpu } from "../backend/gpu.ts";
import { GpuSaeEncoder } from "../kernels/sae_encode.ts";
import type { Sae } from "../sae/config.ts";
import type { FeatureEncoder } from "../sae/feature_encoder.ts";
import { CpuSaeEncoder } from "./cpu.ts";

export type { FeatureEncoder };

/** An encoder for `sae` on `device` (WebGPU: the process's GPU, acquired on first use). */
export async function createEncoder(
  sae: Sae,
  device: Device,
  options: { log?: (line: string) => void } = {},
): Promise<FeatureEncoder> {
  if (device === "cpu") return await CpuSaeEncoder.create(sae);
  return await GpuSaeEncoder.create(await acquireGpu({ log: options.log }), sae);
}
