/**
 * Loading a base-vs-chat crosscoder from a local directory or a hub path (`org/repo` or
 * `org/repo/sub/folder`), detecting its layout from its files, and checking it fits the models and
 * the layer.
 *
 * @module
 */

import { join } from "node:path";
import { assertFinite } from "../../io/finite.ts";
import { UserError } from "../../core/errors.ts";
import { downloadFile, hubCacheDir } from "../../io/download.ts";
import type { Crosscoder, CrosscoderLayout } from "./config.ts";
import { loadDictionaryLearning } from "./dictionary_learning.ts";
import { loadTransformerLens } from "./transformerlens.ts";

const LAYOUT_FILES: Record<CrosscoderLayout, [string, string]> = {
  dictionary_learning: ["config.json", "model.safetensors"],
  transformerlens: ["cfg.json", "cc_weights.pt"],
};

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

async function download(source: string): Promise<string> {
  const [org, repo, ...rest] = source.split("/");
  const id = `${org}/${repo}`;
  const sub = rest.join("/");
  const dir = join(hubCacheDir(), id, "main");
  for (const [first, second] of Object.values(LAYOUT_FILES)) {
    await downloadFile(id, "main", sub ? `${sub}/${first}` : first, dir, false);
    if (await exists(join(dir, sub, first))) {
      await downloadFile(id, "main", sub ? `${sub}/${second}` : second, dir, true);
      return join(dir, sub);
    }
  }
  throw new UserError(
    `${source} has neither config.json (dictionary_learning) nor cfg.json (TransformerLens) on the hub`,
  );
}

/** What {@linkcode loadCrosscoder} checks and applies. */
export interface LoadCrosscoderOptions {
  /** The models' residual width: another is refused. */
  dModel?: number;
  /** The layer the residuals are read after: a crosscoder whose files name another is refused. */
  layer?: number;
  /** TransformerLens layout: the per-model input scale its training applied (default 1, 1). */
  inputScale?: readonly [number, number];
}

/** Refuses a crosscoder whose residual width is not the models' `dModel`. */
export function checkCrosscoderWidth(cc: Crosscoder, dModel: number): void {
  if (cc.config.dModel !== dModel) {
    throw new UserError(
      `crosscoder ${cc.config.source} expects d_model ${cc.config.dModel} but the models have ${dModel}: use a crosscoder trained on these models`,
    );
  }
}

/** Loads the crosscoder at `source` (a directory or hub path). */
export async function loadCrosscoder(source: string, options: LoadCrosscoderOptions = {}): Promise<Crosscoder> {
  const isDir = await Deno.stat(source).then((s) => s.isDirectory, () => false);
  const looksLikeHub = /^[A-Za-z0-9][\w.-]*\/[\w.-]+(\/[\w.-]+)*$/.test(source) && !source.startsWith(".");
  if (!isDir && !looksLikeHub) throw new UserError(`crosscoder directory not found: ${source}`);
  const dir = isDir ? source : await download(source);
  let layout: CrosscoderLayout | undefined;
  for (const [name, [first]] of Object.entries(LAYOUT_FILES) as [CrosscoderLayout, [string, string]][]) {
    if (await exists(join(dir, first))) layout ??= name;
  }
  if (!layout) {
    throw new UserError(
      `${source} is not a crosscoder directory: expected config.json + model.safetensors (dictionary_learning) or cfg.json + cc_weights.pt (TransformerLens replication)`,
    );
  }
  for (const file of LAYOUT_FILES[layout]) {
    if (!(await exists(join(dir, file)))) throw new UserError(`${source} looks like ${layout} but has no ${file}`);
  }
  if (layout === "dictionary_learning" && options.inputScale) {
    throw new UserError(
      `${source}: --input-scale applies to TransformerLens crosscoders; a dictionary_learning one carries its own input normalizer`,
    );
  }
  const cc = layout === "dictionary_learning"
    ? await loadDictionaryLearning(dir, source)
    : await loadTransformerLens(dir, source, options.inputScale);
  const { dModel, dict } = cc.config;
  const sizes: [string, Float32Array, number][] = [
    ["encoder weight", cc.wEnc, 2 * dModel * dict],
    ["encoder bias", cc.bEnc, dict],
    ["decoder weight", cc.wDec, 2 * dict * dModel],
    ["decoder bias", cc.bDec, 2 * dModel],
  ];
  for (const [name, data, expected] of sizes) {
    if (data.length !== expected) {
      throw new UserError(`${source}: ${name} has ${data.length} values, expected ${expected}`);
    }
  }
  // A NaN encoder gives all-zero statistics without a word: refused here, naming the weights file.
  const weightsFile = join(dir, LAYOUT_FILES[layout].at(-1)!);
  for (const [name, data] of sizes) assertFinite(data, { file: weightsFile, tensor: name });
  if (cc.config.threshold !== undefined) {
    assertFinite([cc.config.threshold], { file: weightsFile, tensor: "threshold" });
  }
  if (options.dModel !== undefined) checkCrosscoderWidth(cc, options.dModel);
  if (options.layer !== undefined && cc.config.hookLayer !== undefined && options.layer !== cc.config.hookLayer) {
    throw new UserError(
      `crosscoder ${source} was trained on the output of layer ${cc.config.hookLayer}, not ${options.layer}: pass --layer ${cc.config.hookLayer} or a crosscoder of layer ${options.layer}`,
    );
  }
  return cc;
}
