/**
 * SAELens release ids: `--sae RELEASE/SAE_ID` (as `SAE.from_pretrained(release, sae_id)` names an SAE)
 * resolved through `releases.json`, a table generated from SAELens's `pretrained_saes.yaml` by
 * `scripts/tools/sae_releases.ts` (its `source` records the commit and date it read). Resolution gives
 * the hub repository and folder SAELens downloads from, the files its loader fetches there, the hook
 * layer, the model the SAE was trained on and its Neuronpedia id.
 *
 * @module
 */

import { UserError } from "../core/errors.ts";
import type { SaeFormat } from "./config.ts";
import TABLE from "./releases.json" with { type: "json" };

/** Width and depth of a model, for refusing an SAE of another one before downloading it. */
export interface ModelFacts {
  dModel: number;
  layers: number;
}

/** One SAE of a release: `[id, layer]`, then its path when it differs from the id, then its Neuronpedia id. */
export type SaeRow = [string, number] | [string, number, string | null] | [string, number, string | null, string];

/** A release as the table keeps it. */
export interface SaeRelease {
  /** Hugging Face repository (`repo_id`). */
  repo: string;
  /** SAELens's `model` field (TransformerLens or Hugging Face name). */
  model: string;
  /** SAELens's `conversion_func` (its loader), `sae_lens` when the yaml has none. */
  loader: string;
  saes: SaeRow[];
}

/** The generated table. */
export interface ReleaseTable {
  source: {
    file: string;
    repo: string;
    commit: string;
    date: string;
    /** Neuronpedia ids of the yaml left out because they name another layer than the SAE's id. */
    droppedNeuronpediaIds: string[];
  };
  models: Record<string, ModelFacts>;
  releases: Record<string, SaeRelease>;
  /** Releases of the yaml not in the table, with why (for messages). */
  leftOut: Record<string, string>;
}

/** The table in the repository. */
// JSON imports type arrays as (string | number)[][], not tuples; tests/sae/releases_test.ts checks every row.
export const SAE_RELEASES: ReleaseTable = TABLE as unknown as ReleaseTable;

/**
 * Our loader for each SAELens loader, and the files that loader downloads inside the SAE's folder
 * (decoderesearch/SAELens, sae_lens/loading/pretrained_sae_loaders.py at 468b9cc8): gemma_2
 * `params.npz` (line 499); gemma_3 `config.json` (596) and `params.safetensors` (705); llama_scope
 * `hyperparams.json` (829) and `checkpoints/final.safetensors` (911-912); dictionary_learning_1
 * `config.json` (952) and `ae.pt` (1118); goodfire the path itself (802). `format` is absent where this
 * toolkit has no loader for the files.
 */
const LOADERS: Record<string, { format?: SaeFormat; files: string[]; stored?: string }> = {
  sae_lens: { format: "saelens", files: ["cfg.json", "sae_weights.safetensors"] },
  gemma_2: { format: "gemmascope", files: ["params.npz"] },
  gemma_3: { format: "gemmascope2", files: ["config.json", "params.safetensors"] },
  llama_scope: { format: "llamascope", files: ["hyperparams.json", "checkpoints/final.safetensors"] },
  dictionary_learning_1: { files: ["config.json", "ae.pt"], stored: "dictionary_learning's ae.pt (a torch pickle)" },
  goodfire: { files: [""], stored: "Goodfire's single .pth file" },
};

/** An SAE named by a release id, resolved. */
export interface ResolvedSae {
  release: string;
  id: string;
  repo: string;
  /** Folder (or, for single-file SAEs, file) inside the repository. */
  path: string;
  /** `repo/path`, the hub path {@linkcode loadSae} downloads. */
  hubPath: string;
  /** The files SAELens's loader downloads, as paths inside the repository. */
  files: string[];
  /** Our format for those files; undefined where we have no loader. */
  format?: SaeFormat;
  /** What the files are, when we cannot load them. */
  stored?: string;
  layer: number;
  model: string;
  /** Width and depth of `model`, when the table knows them. */
  modelFacts?: ModelFacts;
  neuronpedia?: string;
}

/** Edit distance, for "did you mean". */
function distance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length];
}

function closest(name: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const d = distance(name, candidate);
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return best !== undefined && bestDistance <= Math.max(3, name.length / 4) ? best : undefined;
}

/** The release a `--sae` value names (its first path component), if it is one the table knows or leaves out. */
export function releaseOf(source: string): string | undefined {
  const first = source.split("/")[0];
  return first in SAE_RELEASES.releases || first in SAE_RELEASES.leftOut ? first : undefined;
}

/**
 * Resolves `RELEASE/SAE_ID`. `RELEASE` alone is a {@linkcode UserError} listing its ids in one line,
 * as are an unknown id, a release the table leaves out, and (for a value without `/` that is no
 * release) an unknown release. Returns undefined for anything else (a directory or a hub path).
 */
export function resolveSaeRelease(source: string): ResolvedSae | undefined {
  const slash = source.indexOf("/");
  const name = slash < 0 ? source : source.slice(0, slash);
  const id = slash < 0 ? undefined : source.slice(slash + 1);
  if (name in SAE_RELEASES.leftOut) {
    throw new UserError(
      `SAELens release ${name} holds ${SAE_RELEASES.leftOut[name]}, which this toolkit does not encode`,
    );
  }
  const release = SAE_RELEASES.releases[name];
  if (!release) {
    if (slash >= 0) return undefined;
    const guess = closest(name, Object.keys(SAE_RELEASES.releases));
    throw new UserError(
      `--sae ${name} is no SAE directory and no SAELens release${guess ? ` (did you mean ${guess}?)` : ""}: ` +
        `pass a directory, a hub path org/repo/folder or RELEASE/SAE_ID, e.g. gemma-scope-2b-pt-res-canonical/layer_12/width_16k/canonical`,
    );
  }
  const ids = release.saes.map((row) => row[0]);
  if (id === undefined || id === "") {
    throw new UserError(
      `SAELens release ${name} has ${ids.length} SAEs; pass --sae ${name}/SAE_ID with one of: ${ids.join(", ")}`,
    );
  }
  const row = release.saes.find((r) => r[0] === id);
  if (!row) {
    const guess = closest(id, ids);
    throw new UserError(
      `SAELens release ${name} has no SAE ${id}${guess ? ` (did you mean ${guess}?)` : ""}; its ids: ${ids.join(", ")}`,
    );
  }
  const path = row[2] ?? id;
  const loader = LOADERS[release.loader];
  if (!loader) throw new Error(`releases.json names loader ${release.loader}, which LOADERS lacks`);
  return {
    release: name,
    id,
    repo: release.repo,
    path,
    hubPath: `${release.repo}/${path}`,
    files: loader.files.map((file) => (file ? `${path}/${file}` : path)),
    format: loader.format,
    stored: loader.stored,
    layer: row[1],
    model: release.model,
    modelFacts: SAE_RELEASES.models[release.model],
    neuronpedia: row[3],
  };
}

/**
 * Refuses, in one line, an SAE whose model differs in width or depth from the model it is applied to
 * (`--base`/`--chat`), before anything is downloaded. Without facts about the SAE's model, the width
 * is checked after loading, as for any SAE.
 */
export function checkSaeFitsModel(sae: ResolvedSae, model: { dModel: number; layers?: number }): void {
  const facts = sae.modelFacts;
  if (!facts) return;
  const name = `${sae.release}/${sae.id}`;
  if (facts.dModel !== model.dModel) {
    throw new UserError(
      `SAE ${name} was trained on ${sae.model} (d_model ${facts.dModel}) but --base/--chat have d_model ${model.dModel}: use an SAE of this model`,
    );
  }
  if (model.layers !== undefined && facts.layers !== model.layers) {
    throw new UserError(
      `SAE ${name} was trained on ${sae.model} (${facts.layers} layers) but --base/--chat have ${model.layers} layers: use an SAE of this model`,
    );
  }
}
