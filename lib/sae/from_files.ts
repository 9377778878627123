/**
 * An SAE from its files, wherever they are (a directory on disk, the files a page was given): the
 * format told by which files are there, loaded by that format's loader into one SAE shape, and checked
 * (sizes, finite weights, the model's width). Resolving a release id or a hub path to those files is
 * the platform's (lib/sae/load.ts).
 *
 * @module
 */

import { UserError } from "../core/errors.ts";
import type { FileSource } from "../core/file_source.ts";
import { assertFinite } from "../io/finite.ts";
import type { Sae, SaeFormat } from "./config.ts";
import { loadGemmaScope } from "./gemmascope.ts";
import { loadGemmaScope2 } from "./gemmascope2.ts";
import { loadLlamaScope } from "./llamascope.ts";
import type { ResolvedSae } from "./releases.ts";
import { loadSaeLens } from "./saelens.ts";

/** Each format's files; the first one tells the format (config.json alone would not: models have one too). */
export const FORMAT_FILES: Record<SaeFormat, string[]> = {
  saelens: ["cfg.json", "sae_weights.safetensors"],
  llamascope: ["hyperparams.json", "checkpoints/final.safetensors"],
  gemmascope: ["params.npz"],
  gemmascope2: ["params.safetensors", "config.json"],
};

const LOADERS: Record<SaeFormat, (files: FileSource, source: string) => Promise<Sae>> = {
  saelens: loadSaeLens,
  llamascope: loadLlamaScope,
  gemmascope: loadGemmaScope,
  gemmascope2: loadGemmaScope2,
};

/** The expected layouts, for messages. */
export const LAYOUTS =
  "cfg.json + sae_weights.safetensors (SAELens), hyperparams.json + checkpoints/final.safetensors (Llama Scope), params.npz (Gemma Scope) or config.json + params.safetensors (Gemma Scope 2)";

/** The format whose first file `files` holds, if any. */
async function detectFormat(files: FileSource): Promise<SaeFormat | undefined> {
  for (const [format, names] of Object.entries(FORMAT_FILES) as [SaeFormat, string[]][]) {
    if (await files.size(names[0]) !== undefined) return format;
  }
  return undefined;
}

/**
 * The SAE in `files` (named `source` in messages), checked against a model of width `dModel` when
 * given; `release` (from the release table) supplies what the files may not say.
 */
export async function loadSaeFiles(
  files: FileSource,
  source: string,
  options: { dModel?: number; release?: ResolvedSae } = {},
): Promise<Sae> {
  const format = await detectFormat(files);
  if (!format) {
    throw new UserError(`${source} is not an SAE directory: expected ${LAYOUTS}`);
  }
  for (const file of FORMAT_FILES[format]) {
    if (await files.size(file) === undefined) throw new UserError(`${source} looks like ${format} but has no ${file}`);
  }
  const sae = await LOADERS[format](files, source);
  const release = options.release;
  if (release) {
    // The table states what the files may not (Gemma Scope's params.npz has no config at all).
    sae.config.hookLayer = release.layer;
    sae.config.modelName = release.model;
    if (release.neuronpedia) sae.config.neuronpediaId = release.neuronpedia;
  }
  sae.config.hookLayer ??= ((m) => (m ? Number(m[1]) : undefined))(/layer_(\d+)/.exec(source));
  const { dIn, dSae } = sae.config;
  const sizes: [string, Float32Array, number][] = [
    ["W_enc", sae.wEnc, dIn * dSae],
    ["b_enc", sae.bEnc, dSae],
    ["W_dec", sae.wDec, dSae * dIn],
    ["b_dec", sae.bDec, dIn],
    ["threshold", sae.threshold, dSae],
    ...(sae.magnitude
      ? [["r_mag", sae.magnitude.scale, dSae], ["b_mag", sae.magnitude.bias, dSae]] as [string, Float32Array, number][]
      : []),
  ];
  if ((sae.config.architecture === "gated") !== (sae.magnitude !== undefined)) {
    throw new Error(`${source}: a gated SAE needs its magnitude path, and only a gated one has it`);
  }
  for (const [name, data, expected] of sizes) {
    if (data.length !== expected) {
      throw new UserError(`${source}: ${name} has ${data.length} values, expected ${expected}`);
    }
  }
  // A NaN threshold silently disables its feature and a NaN weight turns statistics into NaN: refused
  // here, naming the weights file (indices are in the loaded [d_in, d_sae] layout).
  const weightsFile = files.label(FORMAT_FILES[format].at(-1)!);
  for (const [name, data] of sizes) assertFinite(data, { file: weightsFile, tensor: name });
  if (options.dModel !== undefined && options.dModel !== dIn) {
    throw new UserError(
      `SAE ${source} expects d_model ${dIn} but the model has ${options.dModel}: use an SAE trained on this model`,
    );
  }
  return sae;
}
