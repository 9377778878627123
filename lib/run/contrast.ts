/**
 * The role-swap sweep on disk: the model loaded for capture on the CLI's device
 * (lib/analysis/role_swap.ts runs the sweep on it), and contrast vectors for tasks that need them before
 * anyone ran `sweep-layers`, written where `sweep-layers` writes its outputs.
 *
 * @module
 */

import { ROLE_SWAP_DEFAULTS, roleSwapOn, type RoleSwapRun, type RoleSwapSettings } from "../analysis/role_swap.ts";
import { acquireGpu } from "../backend/gpu.ts";
import { writeSweepOutputs } from "../report/sweep.ts";
import { dirOutput } from "../io/dir_output.ts";
import { type Device, type GraphDtype, loadForCapture } from "../runtime/runtime.ts";

/** What {@linkcode roleSwapSweep} needs. */
export interface RoleSwapOptions extends RoleSwapSettings {
  source: string;
  device: Device;
  /** Precision of a graph built from a checkpoint (default: the device's). */
  dtype?: GraphDtype;
  log: (line: string) => void;
}

/** Loads `options.source` for capture of `options.layers` and runs the role-swap sweep on it. */
export async function roleSwapSweep(options: RoleSwapOptions): Promise<RoleSwapRun> {
  const { source, layers, device, dtype, log } = options;
  const handle = await loadForCapture(source, layers, { device, dtype, cut: true, log });
  try {
    const gpu = device === "webgpu" ? await acquireGpu({ log }) : undefined;
    return await roleSwapOn(handle, gpu, options);
  } finally {
    await handle.dispose();
  }
}

/**
 * Runs the role-swap sweep over `layers` and writes its outputs into `outDir` (the contrast vectors
 * where `sweep-layers` puts them): for tasks that need contrast vectors nobody computed yet.
 */
export async function computeContrastVectors(
  options: Omit<RoleSwapOptions, "batchSize" | "maxLength"> & { outDir: string; short: string },
): Promise<void> {
  const run = await roleSwapSweep({ ...options, ...ROLE_SWAP_DEFAULTS });
  await writeSweepOutputs(dirOutput(options.outDir), run.sweep, {
    model: options.source,
    short: options.short,
    position: options.position ?? "last",
    prompts: options.prompts,
    normalTexts: run.normalTexts,
    swappedTexts: run.swappedTexts,
  });
}
