/**
 * Loading an SAE from a local directory or a hub path (`org/repo` or `org/repo/sub/folder`, e.g.
 * `google/gemma-scope-9b-pt-res/layer_20/width_131k/average_l0_114`), detecting the format from its
 * files, and checking it fits the model.
 *
 * @module
 */

import { join } from "node:path";
import { UserError } from "../errors.ts";
import { downloadFile, hubCacheDir } from "../hub.ts";
import type { Sae, SaeFormat } from "./config.ts";
import { loadGemmaScope } from "./gemmascope.ts";
import { loadLlamaScope } from "./llamascope.ts";
import { loadSaeLens } from "./saelens.ts";

const FORMAT_FILES: Record<SaeFormat, string[]> = {
  saelens: ["cfg.json", "sae_weights.safetensors"],
  llamascope: ["hyperparams.json", "checkpoints/final.safetensors"],
  gemmascope: ["params.npz"],
};

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

async function detectFormat(dir: string): Promise<SaeFormat | undefined> {
  for (const [format, files] of Object.entries(FORMAT_FILES) as [SaeFormat, string[]][]) {
    if (await exists(join(dir, files[0]))) return format;
  }
  return undefined;
}

/** Downloads an SAE from the hub (`org/repo[/subfolder]`) and returns its local directory. */
async function downloadSae(source: string): Promise<string> {
  const [org, repo, ...rest] = source.split("/");
  const id = `${org}/${repo}`;
  const sub = rest.join("/");
  const dir = join(hubCacheDir(), id, "main");
  for (const [, files] of Object.entries(FORMAT_FILES)) {
    await downloadFile(id, "main", sub ? `${sub}/${files[0]}` : files[0], dir, false);
    if (await exists(join(dir, sub, files[0]))) {
      for (const file of files.slice(1)) await downloadFile(id, "main", sub ? `${sub}/${file}` : file, dir, true);
      return join(dir, sub);
    }
  }
  throw new UserError(`${source} has none of cfg.json, hyperparams.json or params.npz on the hub`);
}

/**
 * Loads the SAE at `source`. With `dModel`, an SAE for another width is a {@linkcode UserError}.
 */
export async function loadSae(source: string, options: { dModel?: number } = {}): Promise<Sae> {
  const isDir = await Deno.stat(source).then((s) => s.isDirectory, () => false);
  const looksLikeHub = /^[A-Za-z0-9][\w.-]*\/[\w.-]+(\/[\w.-]+)*$/.test(source) && !source.startsWith(".");
  if (!isDir && !looksLikeHub) throw new UserError(`SAE directory not found: ${source}`);
  const dir = isDir ? source : await downloadSae(source);
  const format = await detectFormat(dir);
  if (!format) {
    throw new UserError(
      `${source} is not an SAE directory: expected cfg.json + sae_weights.safetensors (SAELens), hyperparams.json + checkpoints/final.safetensors (Llama Scope) or params.npz (Gemma Scope)`,
    );
  }
  for (const file of FORMAT_FILES[format]) {
    if (!(await exists(join(dir, file)))) throw new UserError(`${source} looks like ${format} but has no ${file}`);
  }
  const sae = format === "saelens"
    ? await loadSaeLens(dir, source)
    : format === "llamascope"
    ? await loadLlamaScope(dir, source)
    : await loadGemmaScope(dir, source);
  sae.config.hookLayer ??= ((m) => (m ? Number(m[1]) : undefined))(/layer_(\d+)/.exec(source));
  const { dIn, dSae } = sae.config;
  const sizes: [string, Float32Array, number][] = [
    ["W_enc", sae.wEnc, dIn * dSae],
    ["b_enc", sae.bEnc, dSae],
    ["W_dec", sae.wDec, dSae * dIn],
    ["b_dec", sae.bDec, dIn],
    ["threshold", sae.threshold, dSae],
  ];
  for (const [name, data, expected] of sizes) {
    if (data.length !== expected) {
      throw new UserError(`${source}: ${name} has ${data.length} values, expected ${expected}`);
    }
  }
  if (options.dModel !== undefined && options.dModel !== dIn) {
    throw new UserError(
      `SAE ${source} expects d_model ${dIn} but the model has ${options.dModel}: use an SAE trained on this model`,
    );
  }
  return sae;
}
