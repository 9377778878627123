/**
 * Loading an SAE from a local directory or a hub path (`org/repo` or `org/repo/sub/folder`, e.g.
 * `google/gemma-scope-9b-pt-res/layer_20/width_131k/average_l0_114`), detecting the format from its
 * files, and checking it fits the model.
 *
 * @module
 */

import { join } from "node:path";
import { assertFinite } from "../io/finite.ts";
import { UserError } from "../core/errors.ts";
import { downloadFile, hubCacheDir } from "../io/download.ts";
import type { Sae, SaeFormat } from "./config.ts";
import type { FileSource } from "../core/file_source.ts";
import { dirSource } from "../io/fs_source.ts";
import { loadGemmaScope } from "./gemmascope.ts";
import { loadGemmaScope2 } from "./gemmascope2.ts";
import { loadLlamaScope } from "./llamascope.ts";
import { checkSaeFitsModel, type ResolvedSae, resolveSaeRelease } from "./releases.ts";
import { loadSaeLens } from "./saelens.ts";

/** Each format's files; the first one tells the format (config.json alone would not: models have one too). */
const FORMAT_FILES: Record<SaeFormat, string[]> = {
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
const LAYOUTS =
  "cfg.json + sae_weights.safetensors (SAELens), hyperparams.json + checkpoints/final.safetensors (Llama Scope), params.npz (Gemma Scope) or config.json + params.safetensors (Gemma Scope 2)";

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

async function detectFormat(dir: string): Promise<SaeFormat | undefined> {
  for (const [format, files] of Object.entries(FORMAT_FILES) as [SaeFormat, string[]][]) {
    if (await exists(join(dir, files[0]))) return format;
  }
  return undefined;
}

/**
 * Downloads an SAE from the hub (`org/repo[/subfolder]`) and returns its local directory. With
 * `format` (known from a release id) only that format's files are asked for; otherwise each format's
 * first file is tried in turn.
 */
async function downloadSae(source: string, format?: SaeFormat): Promise<string> {
  const [org, repo, ...rest] = source.split("/");
  const id = `${org}/${repo}`;
  const sub = rest.join("/");
  const dir = join(hubCacheDir(), id, "main");
  const candidates = format ? [FORMAT_FILES[format]] : Object.values(FORMAT_FILES);
  for (const files of candidates) {
    await downloadFile(id, "main", sub ? `${sub}/${files[0]}` : files[0], dir, false);
    if (await exists(join(dir, sub, files[0]))) {
      for (const file of files.slice(1)) await downloadFile(id, "main", sub ? `${sub}/${file}` : file, dir, true);
      return join(dir, sub);
    }
  }
  throw new UserError(`${source} has no SAE on the hub: expected ${LAYOUTS}`);
}

/**
 * The SAELens release entry `source` names, or undefined for a directory or a hub path; an unknown
 * release or id is a {@linkcode UserError} (see {@linkcode resolveSaeRelease}).
 */
export async function saeReleaseOf(source: string): Promise<ResolvedSae | undefined> {
  const isDir = await Deno.stat(source).then((s) => s.isDirectory, () => false);
  return isDir ? undefined : resolveSaeRelease(source);
}

/**
 * Loads the SAE at `source`: a directory, a hub path (`org/repo[/folder]`) or a SAELens release id
 * (`RELEASE/SAE_ID`, resolved through lib/sae/releases.json to the repository folder SAELens downloads;
 * its layer, model and Neuronpedia id come from the same table). With `dModel`, an SAE for another
 * width is a {@linkcode UserError}; a release id of another model (width or, with `layers`, depth) is
 * refused before anything is downloaded.
 */
export async function loadSae(source: string, options: { dModel?: number; layers?: number } = {}): Promise<Sae> {
  const isDir = await Deno.stat(source).then((s) => s.isDirectory, () => false);
  const release = isDir ? undefined : resolveSaeRelease(source);
  if (release) {
    if (options.dModel !== undefined) checkSaeFitsModel(release, { dModel: options.dModel, layers: options.layers });
    if (!release.format) {
      throw new UserError(
        `${source} is ${release.hubPath} on the hub, stored as ${release.stored}, which this toolkit does not load yet`,
      );
    }
  }
  const looksLikeHub = /^[A-Za-z0-9][\w.-]*\/[\w.-]+(\/[\w.-]+)*$/.test(source) && !source.startsWith(".");
  if (!isDir && !release && !looksLikeHub) throw new UserError(`SAE directory not found: ${source}`);
  const dir = isDir ? source : await downloadSae(release?.hubPath ?? source, release?.format);
  const format = await detectFormat(dir);
  if (!format) {
    throw new UserError(`${source} is not an SAE directory: expected ${LAYOUTS}`);
  }
  for (const file of FORMAT_FILES[format]) {
    if (!(await exists(join(dir, file)))) throw new UserError(`${source} looks like ${format} but has no ${file}`);
  }
  const sae = await LOADERS[format](dirSource(dir), source);
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
  const weightsFile = join(dir, FORMAT_FILES[format].at(-1)!);
  for (const [name, data] of sizes) assertFinite(data, { file: weightsFile, tensor: name });
  if (options.dModel !== undefined && options.dModel !== dIn) {
    throw new UserError(
      `SAE ${source} expects d_model ${dIn} but the model has ${options.dModel}: use an SAE trained on this model`,
    );
  }
  return sae;
}
