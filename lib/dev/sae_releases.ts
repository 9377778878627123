/**
 * Builds `lib/sae/releases.json`, the table of SAELens release ids (`--sae RELEASE/SAE_ID`), from
 * SAELens's `sae_lens/pretrained_saes.yaml` (the generator behind `scripts/tools/sae_releases.ts`). Run
 * that again when SAELens adds releases:
 *
 * ```sh
 * git -C SAELens show <commit>:sae_lens/pretrained_saes.yaml > /tmp/pretrained_saes.yaml
 * deno run -A scripts/tools/sae_releases.ts /tmp/pretrained_saes.yaml \
 *   --repo decoderesearch/SAELens --commit <full hash> --date <commit date, ISO>
 * ```
 *
 * Only the residual-stream releases this toolkit can use are kept (Gemma Scope and Gemma Scope 2 `res`,
 * Llama Scope `lxr`, and the Llama-3.1-8B-Instruct and Qwen residual releases); every other release is
 * listed by name with why it is left out, so `--sae` can say so instead of "unknown". Each SAE's hook
 * layer is parsed from its id here, and the run stops if one does not parse or disagrees with its
 * Neuronpedia id, so a new naming scheme upstream fails loudly rather than giving wrong layers.
 *
 * @module
 */

import { parse } from "yaml";
import type { ModelFacts, ReleaseTable, SaeRelease, SaeRow } from "../sae/releases.ts";

/** Releases kept, by name. Transcoders, MLP/attention SAEs and other models are left out. */
const KEEP: RegExp[] = [
  /^gemma-scope-(2b|9b|27b)-(pt|it)-res(-canonical)?$/,
  /^gemma-scope-2-[0-9a-z.]+-(pt|it)-res(-all)?$/,
  /^llama_scope_lxr_(8x|32x)$/,
  /^llama-3\.1-8b-instruct-andyrdt$/,
  /^goodfire-llama-3\.1-8b-instruct$/,
  /^qwen2\.5-7b-instruct-andyrdt$/,
];

/**
 * Width and depth of the models the kept releases name (SAELens's `model` field), for refusing an SAE
 * of another model before downloading it. From TransformerLens's hard-coded configs
 * (TransformerLensOrg/TransformerLens, transformer_lens/loading_from_pretrained.py at 4cd36aae:
 * Llama-3.1-8B line 399, gemma-2-2b 953, gemma-2-9b 980, gemma-2-27b 1007, gemma-3-270m 1035,
 * gemma-3-1b 1081, gemma-3-4b 1135, gemma-3-12b 1200, gemma-3-27b 1277; "d_model" and "n_layers").
 * Models not listed there (Qwen2.5-7B-Instruct) have no entry: their SAE's width is checked after
 * loading, as for any SAE.
 */
const MODEL_FACTS: Record<string, ModelFacts> = {
  "gemma-2-2b": { dModel: 2304, layers: 26 },
  "gemma-2-9b": { dModel: 3584, layers: 42 },
  "gemma-2-9b-it": { dModel: 3584, layers: 42 },
  "gemma-2-27b": { dModel: 4608, layers: 46 },
  "google/gemma-3-270m": { dModel: 640, layers: 18 },
  "google/gemma-3-270m-it": { dModel: 640, layers: 18 },
  "google/gemma-3-1b-pt": { dModel: 1152, layers: 26 },
  "google/gemma-3-1b-it": { dModel: 1152, layers: 26 },
  "google/gemma-3-4b-pt": { dModel: 2560, layers: 34 },
  "google/gemma-3-4b-it": { dModel: 2560, layers: 34 },
  "google/gemma-3-12b-pt": { dModel: 3840, layers: 48 },
  "google/gemma-3-12b-it": { dModel: 3840, layers: 48 },
  "google/gemma-3-27b-pt": { dModel: 5376, layers: 62 },
  "google/gemma-3-27b-it": { dModel: 5376, layers: 62 },
  "meta-llama/Llama-3.1-8B": { dModel: 4096, layers: 32 },
  "meta-llama/Llama-3.1-8B-Instruct": { dModel: 4096, layers: 32 },
};

/**
 * The hook layer in an SAE id, per naming scheme: Gemma Scope `layer_12/width_16k/...`, Gemma Scope 2
 * `layer_17_width_16k_l0_medium`, Llama Scope `l15r_8x`, andyrdt `resid_post_layer_3_trainer_1`,
 * Goodfire `layer_19`. Each names the residual stream after that (0-based) block: SAELens's loaders
 * give them hook `blocks.{L}.hook_resid_post`.
 */
const LAYER_PATTERNS: RegExp[] = [
  /^layer_(\d+)\/width_\w+\/[\w.]+$/,
  /^layer_(\d+)_width_\w+$/,
  /^l(\d+)r_(?:8|32)x$/,
  /^resid_post_layer_(\d+)_trainer_\d+$/,
  /^layer_(\d+)$/,
];

/** The layer of `id`, or throws: a kept release must never hold an SAE whose layer we would guess. */
export function layerOfSaeId(release: string, id: string): number {
  for (const pattern of LAYER_PATTERNS) {
    const match = pattern.exec(id);
    if (match) return Number(match[1]);
  }
  throw new Error(`${release}/${id}: no layer in the id; add its naming scheme to LAYER_PATTERNS`);
}

/** Why a release that is not kept is left out, for `--sae`'s message. */
function whyLeftOut(name: string, release: Record<string, unknown>): string {
  const text = `${name} ${release.conversion_func ?? ""}`;
  if (/transcoder|clt/i.test(text)) return "transcoders (they read the MLP input, not the residual stream)";
  if (/-(att|mlp)(-|$)|attn|mlp|hook-z|hook_z/i.test(text)) return "attention or MLP SAEs (not the residual stream)";
  return `SAEs of ${release.model ?? "another model"} that this table does not cover`;
}

/** Checks that an SAE of a kept release reads the residual stream, as its family names it. */
function checkResidual(release: string, repo: string, path: string, neuronpedia: string | undefined) {
  const ok = /^gemma-scope-2-/.test(release)
    ? /^resid_post(_all)?\//.test(path)
    : /^gemma-scope-/.test(release)
    ? /-res$/.test(repo)
    : /^llama_scope_lxr/.test(release)
    ? /-L\d+R-/.test(path)
    : /andyrdt/.test(release)
    ? /^resid_post_layer_/.test(path)
    : /resid-post/.test(neuronpedia ?? "");
  if (!ok) throw new Error(`${release}: ${path} does not look like a residual-stream SAE`);
}

/** Builds the table from the yaml text. */
export function buildTable(
  yamlText: string,
  source: { repo: string; commit: string; date: string },
): ReleaseTable {
  const all = parse(yamlText) as Record<string, Record<string, unknown>>;
  const releases: Record<string, SaeRelease> = {};
  const leftOut: Record<string, string> = {};
  const dropped: string[] = [];
  for (const name of Object.keys(all).sort()) {
    const release = all[name];
    if (!KEEP.some((pattern) => pattern.test(name))) {
      leftOut[name] = whyLeftOut(name, release);
      continue;
    }
    const repo = String(release.repo_id);
    const model = String(release.model);
    const saes = release.saes as { id: string; path: string; neuronpedia?: string }[];
    if (!Array.isArray(saes) || saes.length === 0) throw new Error(`${name} lists no SAEs`);
    releases[name] = {
      repo,
      model,
      loader: String(release.conversion_func ?? "sae_lens"),
      // Gemma Scope's `embedding/...` SAEs read the token embeddings (hook_embed), before any block:
      // no layer of ours reads there, so they are left out.
      saes: saes.filter((sae) => !String(sae.id).startsWith("embedding/")).map((sae) => {
        const id = String(sae.id);
        const path = String(sae.path);
        const layer = layerOfSaeId(name, id);
        checkResidual(name, repo, path, sae.neuronpedia);
        // Neuronpedia ids are `{model}/{layer}-{source}`: a second, independent statement of the layer.
        const npLayer = sae.neuronpedia ? /\/(\d+)-/.exec(sae.neuronpedia)?.[1] : undefined;
        // Where they disagree the yaml row has another SAE's Neuronpedia id (seen: gemma-scope-9b-pt-res
        // layer_2/width_16k/average_l0_8 names gemma-2-9b/20-gemmascope-res-131k__l0-10), so the id is
        // dropped rather than linking every feature to the wrong page; the table lists what was dropped.
        let neuronpedia = sae.neuronpedia;
        if (npLayer !== undefined && Number(npLayer) !== layer) {
          dropped.push(`${name}/${id}: ${neuronpedia}`);
          neuronpedia = undefined;
        }
        const stored = path === id ? null : path;
        const row: SaeRow = neuronpedia ? [id, layer, stored, neuronpedia] : stored ? [id, layer, stored] : [id, layer];
        return row;
      }),
    };
  }
  const models: Record<string, ModelFacts> = {};
  for (const release of Object.values(releases)) {
    const facts = MODEL_FACTS[release.model];
    if (!facts) continue;
    models[release.model] = facts;
    for (const [id, layer] of release.saes) {
      if (layer >= facts.layers) throw new Error(`${id}: layer ${layer} but ${release.model} has ${facts.layers}`);
    }
  }
  return {
    source: { file: "sae_lens/pretrained_saes.yaml", ...source, droppedNeuronpediaIds: dropped },
    models,
    releases,
    leftOut,
  };
}

/**
 * The table as JSON with one SAE per line: compact (thousands of rows) yet readable in a diff when
 * SAELens changes. deno fmt leaves the file alone (excluded in deno.json), so this is its layout.
 */
export function formatTable(table: ReleaseTable): string {
  const lines = ["{"];
  lines.push(`  "source": ${JSON.stringify(table.source)},`);
  lines.push(`  "models": ${JSON.stringify(table.models)},`);
  lines.push(`  "releases": {`);
  const names = Object.keys(table.releases);
  names.forEach((name, i) => {
    const { saes, ...rest } = table.releases[name];
    const head = JSON.stringify(rest).slice(0, -1);
    lines.push(`    ${JSON.stringify(name)}: ${head}, "saes": [`);
    saes.forEach((row, j) => lines.push(`      ${JSON.stringify(row)}${j < saes.length - 1 ? "," : ""}`));
    lines.push(`    ]}${i < names.length - 1 ? "," : ""}`);
  });
  lines.push("  },");
  lines.push(`  "leftOut": ${JSON.stringify(table.leftOut)}`);
  lines.push("}");
  return lines.join("\n") + "\n";
}
