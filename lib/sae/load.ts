/**
 * Loading an SAE from a local directory or a hub path (`org/repo` or `org/repo/sub/folder`, e.g.
 * `google/gemma-scope-9b-pt-res/layer_20/width_131k/average_l0_114`), detecting the format from its
 * files, and checking it fits the model.
 *
 * @module
 */

import { join } from "node:path";
import { UserError } from "../core/errors.ts";
import { downloadFile, hubCacheDir } from "../io/download.ts";
import type { Sae, SaeFormat } from "./config.ts";
import { dirSource } from "../io/fs_source.ts";
import { checkSaeFitsModel, type ResolvedSae, resolveSaeRelease } from "./releases.ts";
import { FORMAT_FILES, LAYOUTS, loadSaeFiles } from "./from_files.ts";

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
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
  const sae = await loadSaeFiles(dirSource(dir), source, { dModel: options.dModel, release });
  return sae;
}
