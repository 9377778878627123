/**
 * Contrast vectors for tasks that need them before anyone ran `sweep-layers`: the role-swap sweep of
 * the layers asked for, written where `sweep-layers` writes its outputs.
 *
 * @module
 */

import { type RoleSwapOptions, roleSwapSweep } from "../analysis/role_swap.ts";
import { writeSweepOutputs } from "../report/sweep.ts";
import { dirOutput } from "../io/dir_output.ts";

/**
 * Runs the role-swap sweep over `layers` and writes its outputs into `outDir` (the contrast vectors
 * where `sweep-layers` puts them): for tasks that need contrast vectors nobody computed yet.
 */
export async function computeContrastVectors(
  options: Omit<RoleSwapOptions, "batchSize" | "maxLength"> & { outDir: string; short: string },
): Promise<void> {
  const run = await roleSwapSweep({ ...options, batchSize: 8, maxLength: 512 });
  await writeSweepOutputs(dirOutput(options.outDir), run.sweep, {
    model: options.source,
    short: options.short,
    position: options.position ?? "last",
    prompts: options.prompts,
    normalTexts: run.normalTexts,
    swappedTexts: run.swappedTexts,
  });
}
