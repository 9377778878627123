/**
 * An activation-difference lens run: mean(chat − base) residuals at the read positions, read through
 * the chat model's unembedding, compared with the role-swap contrast vectors (computed when there are
 * none yet), and written out; {@linkcode adlSummary} says what it found in a few lines.
 *
 * @module
 */

import { join } from "node:path";
import {
  type ActivationDifferences,
  activationDifferences,
  type AdlOptions,
  contrastCosines,
  type ContrastVectors,
  lensLogits,
  lensTopTokens,
  loadContrastVectors,
  loadUnembedding,
} from "../analysis/adl.ts";
import { acquireGpu } from "../backend/gpu.ts";
import { ensureOutDir } from "../io/atomic.ts";
import { dirOutput } from "../io/dir_output.ts";
import { promptBars } from "../io/progress.ts";
import { modelShortName, readModelShape, resolveModelDir } from "../models/hub.ts";
import { adlTensorName, writeAdlOutputs } from "../report/adl.ts";
import { type GraphDtype, loadTokenizer } from "../runtime/runtime.ts";
import { computeContrastVectors } from "./contrast.ts";

/** What {@linkcode runAdl} does. */
export interface AdlRunOptions extends Omit<AdlOptions, "dtype" | "layer" | "progress"> {
  dtype: GraphDtype;
  /** The layer read, given the model's layer count (default: the middle one). */
  layer?: (layers: number) => number;
  /** Tokens listed per direction and position. */
  top: number;
  /** The contrast vectors' file (default: sweep-layers' place for the chat model, computed when missing), or none. */
  contrast?: string | false;
  /** Prompts of the role-swap sweep when it has to run. */
  rolePrompts: string[];
  outDir: string;
}

/** What an ADL run found and wrote. */
export interface AdlRun {
  layer: number;
  differences: ActivationDifferences;
  tops: ReturnType<typeof lensTopTokens>[];
  contrast?: ContrastVectors;
  cosines?: Float32Array;
  decode: (ids: number[]) => string;
  files: string[];
}

/** Runs the lens and writes its outputs into `options.outDir`. */
export async function runAdl(options: AdlRunOptions): Promise<AdlRun> {
  const { base, chat, device, dtype, log } = options;
  const chatDir = await resolveModelDir(chat, { dtype });
  const shape = await readModelShape(chatDir);
  const layer = options.layer ? options.layer(shape.layers) : Math.floor(shape.layers / 2);
  await ensureOutDir(options.outDir);
  const differences = await activationDifferences({
    ...options,
    layer,
    progress: promptBars,
  });
  const lens = await lensLogits(await loadUnembedding(differences.chatDir), differences.mean);
  const tops = lens.map((logits) => lensTopTokens(logits, options.top));

  let contrast: ContrastVectors | undefined;
  let cosines: Float32Array | undefined;
  if (options.contrast !== false) {
    const short = modelShortName(chat);
    const path = options.contrast ?? join("results", short, "contrast_vectors.safetensors");
    if (!options.contrast && !(await Deno.stat(path).then(() => true, () => false))) {
      log?.(`no contrast vectors yet: running the role-swap sweep of every layer of ${chat} into ${path}`);
      await computeContrastVectors({
        source: chat,
        layers: Array.from({ length: shape.layers }, (_, l) => l),
        prompts: options.rolePrompts,
        device,
        dtype,
        outDir: join("results", short),
        short,
        log: log ?? (() => {}),
        progress: promptBars,
      });
    }
    contrast = await loadContrastVectors(path);
    cosines = await contrastCosines(await acquireGpu(), differences.mean, contrast);
  }
  const { tokenizer } = await loadTokenizer(chatDir);
  const decode = (ids: number[]) => tokenizer.decode(ids, { skip_special_tokens: false });
  const files = await writeAdlOutputs(dirOutput(options.outDir), {
    differences,
    top: tops,
    contrast,
    cosines,
    decode,
    info: { base, chat, prompts: options.prompts.length },
  });
  return { layer, differences, tops, contrast, cosines, decode, files };
}

/** What a run found, for the terminal: the top tokens and cosines per position, and how to steer with it. */
export function adlSummary(run: AdlRun, options: { chat: string; prompts: number; outDir: string }): string[] {
  const { differences, tops, contrast, cosines, decode, layer } = run;
  const lines = [`\nactivation-difference lens at layer ${layer} (${options.prompts} prompts):`];
  differences.keys.forEach((key, k) => {
    const words = (list: { tokenId: number }[]) => list.slice(0, 5).map((t) => JSON.stringify(decode([t.tokenId])));
    lines.push(`  ${key.padEnd(10)} promoted ${words(tops[k].promoted).join(" ")}`);
    lines.push(`  ${"".padEnd(10)} suppressed ${words(tops[k].suppressed).join(" ")}`);
    if (contrast && cosines) {
      const row = contrast.layers.map((l, j) => `${l}:${cosines[k * contrast.layers.length + j].toFixed(2)}`);
      lines.push(`  ${"".padEnd(10)} cosine with contrast (read at ${contrast.readPosition}) ${row.join(" ")}`);
    }
  });
  lines.push(`\nresults in ${options.outDir}: ${run.files.join(", ")}`);
  lines.push(
    `steer with it: deno task steer --model ${options.chat} --layer ${layer} --vector ${
      join(options.outDir, "adl_vectors.safetensors")
    } --vector-name ${adlTensorName(differences.keys[0])}`,
  );
  return lines;
}
