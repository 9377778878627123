/**
 * The role-swap sweep on a loaded model: the same prompts in the normal chat format and with the roles
 * swapped, residuals read at the turn header after the prompt (or the last token), and per layer the
 * cosine summary and contrast vector (lib/analysis/sweep.ts). Platform-neutral: it takes a handle
 * rewritten to capture the layers and the GPU (or none), so `sweep-layers`, `steer` (over the one layer it
 * steers when it has no vector yet, lib/run/contrast.ts loads the model) and the page's steering panel
 * run this same code.
 *
 * @module
 */

import { collectResiduals, type PositionRule } from "../runtime/activations.ts";
import {
  type HeaderRule,
  NORMAL_HEADER,
  preparePrompts,
  renderNormal,
  renderSwapped,
  SWAPPED_HEADER,
  type TokenType,
} from "../runtime/chat.ts";
import type { Gpu } from "../backend/gpu.ts";
import type { ModelHandle } from "../runtime/runtime.ts";
import { UserError } from "../core/errors.ts";
import { sweepLayers, type SweepResult } from "./sweep.ts";
import type { StartProgress } from "../core/progress.ts";

/** The role-swap notebook's six prompts, the default of `sweep-layers`, `steer` and the page's steering. */
export const ROLE_PROMPTS: readonly string[] = [
  "Who are you?",
  "What is your name?",
  "Can you help me?",
  "What is your job?",
  "What do you like to do?",
  "What is the meaning of life?",
];

/** Batch size and prompt length of the sweep `steer` runs when it has no vector (sweep-layers' defaults). */
export const ROLE_SWAP_DEFAULTS = { batchSize: 8, maxLength: 512 } as const;

/** What {@linkcode roleSwapOn} needs besides the model. */
export interface RoleSwapSettings {
  layers: number[];
  prompts: readonly string[];
  /** One token type to read at, or undefined for the last token. */
  position?: TokenType;
  batchSize: number;
  maxLength: number;
  /** Called once with the number of forward passes, returns a tick function. */
  progress: StartProgress;
}

/** The sweep's result and the rendered texts of both formats (for the output's metadata). */
export interface RoleSwapRun {
  sweep: SweepResult;
  normalTexts: string[];
  swappedTexts: string[];
}

/**
 * Runs the role-swap sweep over `settings.layers` on `handle` (rewritten to capture those layers; one
 * forward pass per prompt and format), cosines on `gpu` or on the CPU without one.
 */
export async function roleSwapOn(
  handle: ModelHandle,
  gpu: Gpu | undefined,
  settings: RoleSwapSettings,
): Promise<RoleSwapRun> {
  const { layers, prompts, position } = settings;
  if (prompts.length < 2) throw new UserError("the role-swap sweep needs at least two prompts");
  const prepare = (render: (prompt: string) => string, header: HeaderRule) =>
    preparePrompts(handle, prompts, {
      render,
      maxLength: settings.maxLength,
      types: position ? [position] : [],
      header,
    });
  // Token-type positions read the turn header after the prompt in both formats (see HeaderRule).
  const sets = {
    normal: prepare((p) => renderNormal(handle, p), NORMAL_HEADER),
    swapped: prepare((p) => renderSwapped(handle, p), SWAPPED_HEADER),
  };
  const rule: PositionRule = position ? { kind: "types", types: [position] } : { kind: "last" };
  const progress = settings.progress("sweep", 2 * prompts.length);
  const tick = (n: number) => progress.tick(n);
  const normal = await collectResiduals(handle, sets.normal, layers, rule, settings.batchSize, tick);
  const swapped = await collectResiduals(handle, sets.swapped, layers, rule, settings.batchSize, tick);
  progress.finish();
  return {
    sweep: await sweepLayers(gpu, normal, swapped, layers),
    normalTexts: sets.normal.map((p) => p.text),
    swappedTexts: sets.swapped.map((p) => p.text),
  };
}
