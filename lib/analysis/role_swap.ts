/**
 * The role-swap sweep as one call: the same prompts in the normal chat format and with the roles
 * swapped, residuals read at the turn header after the prompt, and per layer the cosine summary and
 * contrast vector (lib/analysis/sweep.ts). `sweep-layers` runs it over every layer; `steer` over the one layer
 * it steers when it has no vector yet.
 *
 * @module
 */

import { collectResiduals, type PositionRule } from "../runtime/activations.ts";
import { loadForCapture } from "../runtime/runtime.ts";
import {
  type HeaderRule,
  NORMAL_HEADER,
  preparePrompts,
  renderNormal,
  renderSwapped,
  SWAPPED_HEADER,
  type TokenType,
} from "../runtime/chat.ts";
import { acquireGpu } from "../backend/gpu.ts";
import type { Device, GraphDtype } from "../runtime/runtime.ts";
import { sweepLayers, type SweepResult } from "./sweep.ts";
import type { StartProgress } from "../core/progress.ts";

/** What {@linkcode roleSwapSweep} needs. */
export interface RoleSwapOptions {
  source: string;
  layers: number[];
  prompts: string[];
  /** One token type to read at, or undefined for the last token. */
  position?: TokenType;
  batchSize: number;
  maxLength: number;
  device: Device;
  /** Precision of a graph built from a checkpoint (default: the device's). */
  dtype?: GraphDtype;
  log: (line: string) => void;
  /** Called once with the number of forward passes, returns a tick function. */
  progress: StartProgress;
}

/** The sweep's result and the rendered texts of both formats (for the output's metadata). */
export interface RoleSwapRun {
  sweep: SweepResult;
  normalTexts: string[];
  swappedTexts: string[];
}

/** Runs the role-swap sweep over `options.layers` (one forward pass per prompt and format). */
export async function roleSwapSweep(options: RoleSwapOptions): Promise<RoleSwapRun> {
  const { source, layers, prompts, position, device, dtype, log } = options;
  const handle = await loadForCapture(source, layers, { device, dtype, cut: true, log });
  try {
    const prepare = (render: (prompt: string) => string, header: HeaderRule) =>
      preparePrompts(handle, prompts, {
        render,
        maxLength: options.maxLength,
        types: position ? [position] : [],
        header,
      });
    // Token-type positions read the turn header after the prompt in both formats (see HeaderRule).
    const sets = {
      normal: prepare((p) => renderNormal(handle, p), NORMAL_HEADER),
      swapped: prepare((p) => renderSwapped(handle, p), SWAPPED_HEADER),
    };
    const rule: PositionRule = position ? { kind: "types", types: [position] } : { kind: "last" };
    const progress = options.progress("sweep", 2 * prompts.length);
    const tick = (n: number) => progress.tick(n);
    const normal = await collectResiduals(handle, sets.normal, layers, rule, options.batchSize, tick);
    const swapped = await collectResiduals(handle, sets.swapped, layers, rule, options.batchSize, tick);
    progress.finish();
    const gpu = device === "webgpu" ? await acquireGpu({ log }) : undefined;
    return {
      sweep: await sweepLayers(gpu, normal, swapped, layers),
      normalTexts: sets.normal.map((p) => p.text),
      swappedTexts: sets.swapped.map((p) => p.text),
    };
  } finally {
    await handle.dispose();
  }
}
