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

import type { ByteStore } from "../../lib/core/byte_store.ts";
import type { ReportOutput } from "../../lib/core/output.ts";
import type { StartProgress } from "../../lib/core/progress.ts";
import { defaultGraphDtype } from "../../lib/backend/gpu_info.ts";
import { buildModel, type BuiltModel } from "../../lib/models/built_model.ts";
import { describeMismatch } from "../../lib/models/pair.ts";
import { checkModelFitsGpu } from "../../lib/models/memory.ts";
import { UserError } from "../../lib/core/errors.ts";
import { ADL, ADL_DEFAULTS } from "../../lib/cli/commands.ts";
import { parseTokenTypes } from "../../lib/runtime/chat.ts";
import { differencesOf } from "../../lib/analysis/activation_differences.ts";
import { lensLogits, lensTopTokens, unembeddingOf } from "../../lib/analysis/lens.ts";
import { adlTensorName, writeAdlOutputs } from "../../lib/report/adl.ts";
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
import { codeVersion, loadPageModel, pageGpu, pageTokenizerHandle } from "./page_runtime.ts";

/** Where the page's steering vector comes from. */
export type PageVector =
  | { kind: "role-swap" }
  /** mean(chat − base) at the layer's first read position (`adl.asst` of `deno task adl`); `base` is the base model. */
  | { kind: "adl"; base: NamedFiles }
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
  /** Where built graphs and converted weights are kept between runs (none: built each run). */
  builds?: ByteStore;
  /** Once, before the first response: the table's rows (prompts) and columns (magnitudes). */
  start?: (prompts: readonly string[], magnitudes: readonly number[]) => void;
  /** A piece of the response to prompt `row` at magnitude `column`, as it is generated. */
  text?: (row: number, column: number, text: string) => void;
}

/**
 * The activation-difference lens at `layer` over `prompts`, computed as `deno task adl` computes it
 * (lib/analysis/activation_differences.ts, its defaults), its files written into `out` (the vectors,
 * the lens's tokens); the vector of the first read position is the steering vector.
 */
async function adlVector(
  chat: BuiltModel,
  base: NamedFiles,
  layer: number,
  run: {
    prompts: readonly string[];
    model: NamedFiles;
    dtype: BuiltModel["dtype"];
    out: ReportOutput;
    hooks: PageSteerHooks;
    log: (line: string) => void;
  },
): Promise<Float32Array> {
  const mismatch = await describeMismatch(base.files, chat.files);
  if (mismatch) {
    throw new UserError(`the base and chat models differ (${mismatch}): the lens needs two versions of one model`);
  }
  const cache = run.hooks.builds && { store: run.hooks.builds, version: await codeVersion() };
  run.log(`building the ${run.dtype} graph of the base model ${base.name}`);
  const built = { base: await buildModel(base.files, run.dtype, { cache, log: run.log }), chat };
  const names = { base: base.name, chat: run.model.name };
  run.log(`computing the activation differences at layer ${layer} (the lens of deno task adl)`);
  const tokenTypes = parseTokenTypes(ADL.flags["token-types"].default);
  const differences = await differencesOf(
    (model) => loadPageModel(built[model], names[model], { capture: [layer], cut: true, steering: [] }),
    {
      layer,
      prompts: run.prompts,
      tokenTypes,
      firstN: ADL_DEFAULTS.firstN,
      maxLength: ADL_DEFAULTS.maxLength,
      batchSize: ADL_DEFAULTS.batchSize,
      progress: run.hooks.progress,
    },
  );
  const lens = await lensLogits(await unembeddingOf(chat.checkpoint), differences.mean);
  const tokenizer = (await pageTokenizerHandle(chat, run.model.name)).tokenizer;
  await writeAdlOutputs(run.out, {
    differences,
    top: lens.map((logits) => lensTopTokens(logits, ADL_DEFAULTS.top)),
    decode: (ids) => tokenizer.decode(ids, { skip_special_tokens: false }),
    info: { base: base.name, chat: run.model.name, prompts: run.prompts.length },
  });
  const vector = Float32Array.from(differences.mean[0]);
  run.log(`vector: ${adlTensorName(differences.keys[0])} (norm ${norm(vector).toPrecision(4)})`);
  return vector;
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
  // Before anything is built or loaded, as the diff does: a model no GPU buffer holds is one line.
  await checkModelFitsGpu(model.files, `the model ${model.name}`, dtype, gpu);
  if (inputs.vector.kind === "adl") {
    await checkModelFitsGpu(inputs.vector.base.files, `the base model ${inputs.vector.base.name}`, dtype, gpu);
  }
  log(`building the ${dtype} graph of ${model.name}`);
  const cache = hooks.builds && { store: hooks.builds, version: await codeVersion() };
  const built = await buildModel(model.files, dtype, { cache, log });
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
  } else if (inputs.vector.kind === "adl") {
    layer = steerLayer(inputs.layer, config.numLayers);
    vector = await adlVector(built, inputs.vector.base, layer, { prompts, model, dtype, out, hooks, log });
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
