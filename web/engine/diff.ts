/// <reference lib="dom" />
/**
 * The diff in the page: the CLI's collection (lib/analysis/diff_collect.ts) and report
 * (lib/report/diff.ts) over models, SAE and prompts the user gave the page, on the browser's GPU.
 * It writes the files `deno task diff` writes (statistics, tables, figure), so a run started here can
 * be reported, merged or resumed by the CLI, and the other way round.
 *
 * @module
 */

import { UserError } from "../../lib/core/errors.ts";
import { DIFF_DEFAULTS } from "../../lib/cli/commands.ts";
import type { ByteStore } from "../../lib/core/byte_store.ts";
import type { FileSource } from "../../lib/core/file_source.ts";
import type { ReportOutput } from "../../lib/core/output.ts";
import type { Progress, StartProgress } from "../../lib/core/progress.ts";
import { defaultGraphDtype } from "../../lib/backend/gpu_info.ts";
import { type CheckpointStore } from "../../lib/analysis/collect.ts";
import {
  checkLayer,
  collectDiffModel,
  type DiffPlan,
  modelFingerprint,
  planDiff,
} from "../../lib/analysis/diff_collect.ts";
import {
  DIFF_MODELS,
  type DiffModel,
  readRunStatsFrom,
  readStatsFrom,
  statsFileName,
} from "../../lib/analysis/stats_file.ts";
import { bytesSource } from "../../lib/core/file_source.ts";
import { buildModel, type BuiltModel } from "../../lib/models/built_model.ts";
import { checkModelFitsGpu } from "../../lib/models/memory.ts";
import { describeMismatch } from "../../lib/models/pair.ts";
import type { TokenType } from "../../lib/runtime/chat.ts";
import { loadSaeFiles } from "../../lib/sae/from_files.ts";
import { saeIdentity } from "../../lib/sae/identity.ts";
import { GpuSaeEncoder } from "../../lib/kernels/sae_encode.ts";
import { dashboardsLink, type RunStats, writeDiffTables, writeFeatureIncreasesPage } from "../../lib/report/diff.ts";
import { dashboardData, featureSubset, tokenActivations } from "../../lib/report/dashboard_data.ts";
import { writeDashboardPage } from "../../lib/report/dashboards.ts";
import { codeVersion, loadPageModel, pageGpu, pageTokenizerHandle } from "./page_runtime.ts";

/** A folder of files the user gave the page, and the name runs record it by. */
export interface NamedFiles {
  files: FileSource;
  name: string;
}

/** What a diff in the page runs over (the CLI's flags, with its defaults filled in by the page). */
export interface PageDiffInputs {
  base: NamedFiles;
  chat: NamedFiles;
  sae: NamedFiles;
  /** The run's prompts, sampled as the CLI samples them. */
  prompts: readonly string[];
  /** Default: the layer the SAE names, else 2 (the CLI's). */
  layer?: number;
  tokenTypes: TokenType[];
  topK: number;
  batchSize: number;
  maxLength: number;
  topExamples: number;
  /** Feature dashboards for the first this many rows per read position of each table (0: none). */
  cards: number;
  checkpointEvery: number;
  resume: boolean;
}

/** How the page follows and steers a run. */
export interface PageRunHooks {
  progress?: StartProgress;
  log?: (line: string) => void;
  /** Where built graphs and converted weights are kept between runs (none: built each run). */
  builds?: ByteStore;
  /** Checkpoint files given to resume from, each used for the model of this run it belongs to. */
  resumeFrom?: { name: string; bytes: Uint8Array }[];
  /** Where each model's resume checkpoint lives (none: no checkpoints). */
  checkpoint?: (model: DiffModel, fingerprint: string) => CheckpointStore;
  signal?: AbortSignal;
}

/** What a page run produced beyond its files. */
export interface PageDiffResult {
  prompts: number;
  fallbacks: number;
  truncated: number;
  layer: number;
  files: string[];
}

/** `progress`, stopping the run at the next batch once `signal` is aborted (after that batch's checkpoint). */
function cancellable(progress: Progress | undefined, signal: AbortSignal | undefined): Progress | undefined {
  if (!signal) return progress;
  return {
    tick: (n) => progress?.tick(n),
    update(done) {
      progress?.update(done);
      signal.throwIfAborted();
    },
    finish: () => progress?.finish(),
  };
}

/**
 * The given checkpoint files by the model of this run each belongs to (its metadata names the run's
 * fingerprint and the model); a file of another run, or not a checkpoint, is refused in one line.
 */
async function importedCheckpoints(
  plan: DiffPlan,
  files: readonly { name: string; bytes: Uint8Array }[],
): Promise<Map<DiffModel, Uint8Array>> {
  const found = new Map<DiffModel, Uint8Array>();
  for (const file of files) {
    const { metadata } = await readStatsFrom(bytesSource(file.name, file.bytes), file.name);
    const model = DIFF_MODELS.find((m) => metadata.run_fingerprint === modelFingerprint(plan, m));
    if (!model) {
      throw new UserError(
        `${file.name} is a checkpoint of another run (other prompts, models, SAE or settings): give this run's, or none`,
      );
    }
    found.set(model, file.bytes);
  }
  return found;
}

/** A checkpoint that is never kept. */
const NO_CHECKPOINT: CheckpointStore = {
  label: "(none)",
  load: () => Promise.resolve(undefined),
  save: () => Promise.resolve(),
  remove: () => Promise.resolve(),
};

/**
 * Runs the diff: builds both graphs from their checkpoints, checks the pair, loads the SAE, collects
 * both models' statistics on the GPU and writes `stats_{base,chat}.safetensors`, `top_*.csv` and
 * `feature_increases.html` into `out`.
 */
export async function runPageDiff(
  inputs: PageDiffInputs,
  out: ReportOutput,
  hooks: PageRunHooks = {},
): Promise<PageDiffResult> {
  const log = hooks.log ?? (() => {});
  const gpu = await pageGpu();
  const dtype = defaultGraphDtype(gpu);
  // Before anything is built or loaded: a model whose largest tensor no GPU buffer holds is refused
  // from its config.json alone.
  for (const model of DIFF_MODELS) {
    await checkModelFitsGpu(inputs[model].files, `the ${model} model ${inputs[model].name}`, dtype, gpu);
  }
  const mismatch = await describeMismatch(inputs.base.files, inputs.chat.files);
  if (mismatch) {
    throw new UserError(`the base and chat models differ (${mismatch}): a diff needs two versions of one model`);
  }
  const built = {} as Record<DiffModel, BuiltModel>;
  for (const model of DIFF_MODELS) {
    log(`building the ${dtype} graph of the ${model} model ${inputs[model].name}`);
    const cache = hooks.builds && { store: hooks.builds, version: await codeVersion() };
    built[model] = await buildModel(inputs[model].files, dtype, { cache, log });
    hooks.signal?.throwIfAborted();
  }
  const config = built.chat.checkpoint.config;
  const sae = await loadSaeFiles(inputs.sae.files, inputs.sae.name, { dModel: config.hiddenSize });
  const layer = inputs.layer ?? sae.config.hookLayer ?? DIFF_DEFAULTS.layer;
  checkLayer(layer, config.numLayers);
  if (sae.config.hookLayer !== undefined && sae.config.hookLayer !== layer) {
    log(`warning: the SAE was trained on layer ${sae.config.hookLayer}, reading layer ${layer}`);
  }
  const plan = await planDiff({
    models: {
      base: { source: inputs.base.name, identity: built.base.identity },
      chat: { source: inputs.chat.name, identity: built.chat.identity },
    },
    sae,
    saeSource: inputs.sae.name,
    saeIdentity: await saeIdentity(sae),
    tokenizer: await pageTokenizerHandle(built.chat, inputs.chat.name),
    prompts: inputs.prompts,
    layer,
    tokenTypes: inputs.tokenTypes,
    batchSize: inputs.batchSize,
    maxLength: inputs.maxLength,
    topExamples: inputs.topExamples,
    device: "webgpu",
    dtype,
  });
  const imported = await importedCheckpoints(plan, hooks.resumeFrom ?? []);
  const encoder = await GpuSaeEncoder.create(gpu, sae);
  const stats = {} as Record<DiffModel, RunStats>;
  try {
    for (const model of DIFF_MODELS) {
      const handle = await loadPageModel(built[model], inputs[model].name, {
        capture: [layer],
        cut: true,
        steering: [],
      }, { outputsOnGpu: true });
      const checkpoint = hooks.checkpoint?.(model, plan.fingerprint) ?? NO_CHECKPOINT;
      const given = imported.get(model);
      if (given) await checkpoint.save(given);
      // The page resumes whenever its storage holds this very run's checkpoint (keyed by its fingerprint).
      const resume = inputs.resume && await checkpoint.load() !== undefined;
      if (resume) log(`resuming the ${model} model from ${checkpoint.label}`);
      try {
        const bytes = await collectDiffModel(plan, model, handle, encoder, {
          checkpoint,
          checkpointEvery: hooks.checkpoint ? inputs.checkpointEvery : 0,
          resume,
          progress: cancellable(hooks.progress?.(`${model} model`, plan.prepared.length), hooks.signal),
          log,
        });
        const name = statsFileName(model);
        await out.write(name, bytes);
        await checkpoint.remove();
        stats[model] = await readRunStatsFrom(bytesSource(name, bytes), name);
      } finally {
        await handle.dispose();
      }
      hooks.signal?.throwIfAborted();
    }
  } finally {
    encoder.destroy();
  }
  const labels = { base: statsFileName("base"), chat: statsFileName("chat") };
  const diff = await writeDiffTables(stats, out, { topK: inputs.topK, decreases: false, labels });
  let link = "";
  if (inputs.cards > 0 && inputs.topExamples > 0) {
    log(`feature dashboards: running the top examples' prompts again`);
    const data = await dashboardData({
      title: diff.title,
      tables: diff.tables,
      stats,
      prompts: inputs.prompts,
      tokenizer: await pageTokenizerHandle(built.chat, inputs.chat.name),
      cards: inputs.cards,
      async activations(model, requests) {
        const features = [...new Set(requests.flatMap((r) => r.features))].sort((a, b) => a - b);
        const subset = featureSubset(sae, features);
        const subsetEncoder = await GpuSaeEncoder.create(gpu, subset.sae);
        try {
          const handle = await loadPageModel(built[model], inputs[model].name, {
            capture: [layer],
            cut: true,
            steering: [],
          });
          try {
            return await tokenActivations(handle, subsetEncoder, subset.column, requests, {
              layer,
              batchSize: inputs.batchSize,
            });
          } finally {
            await handle.dispose();
          }
        } finally {
          subsetEncoder.destroy();
        }
      },
      // Neuronpedia is not asked from the page: nothing leaves it but hub downloads.
    });
    await writeDashboardPage(out, "features.html", data);
    link = dashboardsLink(data.cards.length, inputs.cards);
  }
  await writeFeatureIncreasesPage(stats, diff, out, link);
  // As the CLI writes it (lib/io/atomic.ts writeJsonAtomic), so the CLI can report this run.
  await out.write("prompts.json", JSON.stringify(inputs.prompts, null, 2) + "\n");
  return {
    ...plan.summary,
    layer,
    files: [
      ...DIFF_MODELS.map((m) => statsFileName(m)),
      ...diff.files,
      "feature_increases.html",
      ...(link ? ["features.html"] : []),
      "prompts.json",
    ],
  };
}
