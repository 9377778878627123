/// <reference lib="dom" />
/**
 * Steering in the page: `deno task steer`'s computation (lib/analysis/steer.ts) on a checkpoint the
 * user gave the page, on the browser's GPU. The vector is the role-swap contrast of the layer,
 * computed as the CLI computes it when it has none (lib/analysis/role_swap.ts, read at the last token),
 * or an SAE feature's decoder row (lib/sae/feature_direction.ts, as `deno task vector` takes it). It
 * writes the files the CLI writes (`{short}_layer{L}_steer.json` with its run record, the notebook's
 * export, and for the role-swap the sweep's outputs with `contrast_vectors.safetensors`), so
 * `deno task steer --out-dir <downloads>` extends a run started here.
 *
 * @module
 */

import type { ReportOutput } from "../../lib/core/output.ts";
import type { StartProgress } from "../../lib/core/progress.ts";
import { defaultGraphDtype } from "../../lib/backend/gpu_info.ts";
import { buildModel } from "../../lib/models/built_model.ts";
import { modelShortName } from "../../lib/models/short_name.ts";
import { loadSaeFiles } from "../../lib/sae/from_files.ts";
import { featureDirection } from "../../lib/sae/feature_direction.ts";
import { ROLE_SWAP_DEFAULTS, roleSwapOn } from "../../lib/analysis/role_swap.ts";
import {
  steerGenerate,
  steeringRewrite,
  type SteerJob,
  steerLayer,
  steerRunSettings,
  type SteerSampling,
} from "../../lib/analysis/steer.ts";
import {
  addSteerResponse,
  jsonText,
  STEER_EXPORT_FILE,
  steerExport,
  type SteerResults,
  steerResultsName,
  steerRunRecord,
} from "../../lib/analysis/steer_results.ts";
import { writeSweepOutputs } from "../../lib/report/sweep.ts";
import type { NamedFiles } from "./diff.ts";
import { loadPageModel, pageGpu } from "./page_runtime.ts";

/** Where the page's steering vector comes from. */
export type PageVector =
  | { kind: "role-swap" }
  | { kind: "sae-feature"; sae: NamedFiles; feature: number };

/** What steering in the page runs (the CLI's flags, with its defaults filled in by the engine). */
export interface PageSteerInputs {
  model: NamedFiles;
  /** Default: the SAE's hook layer for an SAE feature, else the middle layer (the CLI's). */
  layer?: number;
  vector: PageVector;
  magnitudes: readonly number[];
  sampling: SteerSampling;
  seed: number;
  prompts: readonly string[];
  maxNewTokens: number;
}

/** How the page follows a steering run. */
export interface PageSteerHooks {
  log?: (line: string) => void;
  progress?: StartProgress;
  signal?: AbortSignal;
  /** Once, before the first response: the table's rows (prompts) and columns (magnitudes). */
  start?: (prompts: readonly string[], magnitudes: readonly number[]) => void;
  /** A piece of the response to prompt `row` at magnitude `column`, as it is generated. */
  text?: (row: number, column: number, text: string) => void;
}

/** What a steering run produced beyond its files. */
export interface PageSteerResult {
  layer: number;
  /** `responses[i]` answers `prompt` at `magnitudes[i]`. */
  rows: { prompt: string; responses: string[] }[];
}

/**
 * Builds the model's graph, computes the vector at the layer, generates every prompt at every magnitude
 * with the vector added after the layer (one response each), and writes the CLI's files into `out`.
 */
export async function runPageSteer(
  inputs: PageSteerInputs,
  out: ReportOutput,
  hooks: PageSteerHooks = {},
): Promise<PageSteerResult> {
  const log = hooks.log ?? (() => {});
  const { model, magnitudes, prompts } = inputs;
  const gpu = await pageGpu();
  const dtype = defaultGraphDtype(gpu);
  log(`building the ${dtype} graph of ${model.name}`);
  const built = await buildModel(model.files, dtype);
  hooks.signal?.throwIfAborted();
  const config = built.checkpoint.config;
  const short = modelShortName(model.name);

  let vector: Float32Array;
  let layer: number;
  if (inputs.vector.kind === "sae-feature") {
    const { sae: saeFiles, feature } = inputs.vector;
    const sae = await loadSaeFiles(saeFiles.files, saeFiles.name, { dModel: config.hiddenSize });
    layer = steerLayer(inputs.layer ?? sae.config.hookLayer, config.numLayers);
    if (sae.config.hookLayer !== undefined && sae.config.hookLayer !== layer) {
      log(`warning: the SAE was trained on layer ${sae.config.hookLayer}, steering after layer ${layer}`);
    }
    vector = featureDirection(sae, feature);
    log(`vector: W_dec[${feature}] of ${saeFiles.name} (norm ${norm(vector).toPrecision(4)})`);
  } else {
    layer = steerLayer(inputs.layer, config.numLayers);
    // As `deno task steer` computes it when it has no vector: the role-swap sweep of this one layer.
    log(`computing the contrast vector of layer ${layer} (role-swap sweep of that layer, read at the last token)`);
    const handle = await loadPageModel(built, model.name, { capture: [layer], cut: true, steering: [] });
    let run;
    try {
      run = await roleSwapOn(handle, gpu, {
        layers: [layer],
        prompts,
        ...ROLE_SWAP_DEFAULTS,
        progress: hooks.progress ?? (() => ({ tick() {}, update() {}, finish() {} })),
      });
    } finally {
      await handle.dispose();
    }
    vector = run.sweep.contrast.get(layer)!;
    await writeSweepOutputs(out, run.sweep, {
      model: model.name,
      short,
      position: "last",
      prompts,
      normalTexts: run.normalTexts,
      swappedTexts: run.swappedTexts,
    });
    log(`vector: contrast.${layer} (norm ${norm(vector).toPrecision(4)})`);
  }
  hooks.signal?.throwIfAborted();

  const kind = "addition";
  const positions = "all";
  const results: SteerResults = {};
  const jobs: SteerJob[] = prompts.flatMap((prompt) =>
    magnitudes.map((magnitude) => ({ prompt, magnitude, count: 1 }))
  );
  const cells = new Map(
    jobs.map((job, i) => [job, { row: Math.floor(i / magnitudes.length), column: i % magnitudes.length }]),
  );
  const rows = prompts.map((prompt) => ({ prompt, responses: magnitudes.map(() => "") }));
  hooks.start?.(prompts, magnitudes);
  const handle = await loadPageModel(built, model.name, steeringRewrite(layer, kind, positions));
  try {
    const progress = hooks.progress?.("steer", jobs.length);
    await steerGenerate(handle, jobs, {
      vector,
      layer,
      kind,
      maxNewTokens: inputs.maxNewTokens,
      sampling: inputs.sampling,
      seed: inputs.seed,
      log,
      signal: hooks.signal,
      onText: (text, job) => {
        const cell = cells.get(job)!;
        hooks.text?.(cell.row, cell.column, text);
      },
      onResponse: (job, response) => {
        const cell = cells.get(job)!;
        rows[cell.row].responses[cell.column] = response;
        addSteerResponse(results, job.prompt, job.magnitude, response);
        progress?.tick(1);
      },
    });
    progress?.finish();
  } finally {
    await handle.dispose();
  }

  const resultsName = steerResultsName(short, layer, kind, positions);
  await out.write(resultsName, jsonText(results));
  const settings = await steerRunSettings({
    modelIdentity: built.identity,
    vector,
    layer,
    kind,
    positions,
    sampling: inputs.sampling,
    maxNewTokens: inputs.maxNewTokens,
  });
  await out.write(`${resultsName}.run.json`, jsonText(await steerRunRecord(settings)));
  if (inputs.vector.kind === "role-swap") {
    const metadata = { modelName: model.name, modelType: short, layer, saeTrainer: "contrast" };
    await out.write(STEER_EXPORT_FILE, jsonText(steerExport(results, metadata)));
  }
  return { layer, rows };
}

/** The Euclidean norm of `v`. */
function norm(v: Float32Array): number {
  let sum = 0;
  for (const x of v) sum += x * x;
  return Math.sqrt(sum);
}
