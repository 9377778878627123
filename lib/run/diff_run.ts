/**
 * One feature-diffing run, built around its fingerprint: a digest of everything that determines its
 * statistics and top examples (the prompts, both models' content, the SAE, layer, token types, batch
 * size, max length, top examples kept). Collection (whole or one shard, with checkpoints and resume), shard merging and the report
 * all carry or check it, so statistics of different runs are never resumed into, merged with or
 * diffed against each other.
 *
 * @module
 */

import { join } from "node:path";

export { DEFAULT_TOP_EXAMPLES, diffFingerprint, type ShardSpec };
import type { StartProgress } from "../core/progress.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import { loadForCapture } from "../runtime/runtime.ts";
import type { TokenType } from "../runtime/chat.ts";
import {
  checkLayer,
  collectDiffModel,
  DEFAULT_TOP_EXAMPLES,
  diffFingerprint,
  planDiff,
  type ShardSpec,
} from "../analysis/diff_collect.ts";
import type { DiffMetric, DiffRow } from "../features/diff.ts";
import { UserError } from "../core/errors.ts";
import { readModelShape } from "../models/hub.ts";
import { saeIdentity } from "../sae/identity.ts";
import { ensureOutDir } from "../io/atomic.ts";
import { type PairRunOptions, resolveModelPair } from "../runtime/model_pair.ts";
import { dashboardsLink, writeDiffTables, writeFeatureIncreasesPage } from "../report/diff.ts";
import { loadTokenizer } from "../runtime/runtime.ts";
import { createEncoder } from "../encoders/encoder.ts";
import { loadSae } from "../sae/load.ts";
import type { FeatureStats } from "../features/stats.ts";
import type { Device } from "../backend/device.ts";
import { type ExplanationOptions } from "../features/neuronpedia_api.ts";
import { writeDashboards } from "./dashboards.ts";
import { writeRunPrompts } from "./run_prompts.ts";
import type { TopExamples } from "../features/top_examples.ts";
import { dirOutput } from "../io/dir_output.ts";
import {
  checkpointFileName,
  DIFF_MODELS,
  type DiffModel,
  fileCheckpoint,
  parseStatsFileName,
  readRunStats,
  type StatsMetadata,
  statsPath,
  writeStats,
} from "./stats_files.ts";

/** Shard `index` of `count` over `total` prompts (contiguous, sizes differing by at most one). */
export function shardOf(total: number, index: number, count: number): ShardSpec {
  return {
    index,
    count,
    start: Math.floor((index * total) / count),
    end: Math.floor(((index + 1) * total) / count),
  };
}

/** Parses `--shard i/n`. */
export function parseShard(value: string): { index: number; count: number } {
  const match = /^(\d+)\/(\d+)$/.exec(value);
  const [index, count] = match ? [Number(match[1]), Number(match[2])] : [NaN, NaN];
  if (!match || count < 1 || index >= count) {
    throw new UserError(`bad --shard "${value}": use i/n with 0 <= i < n, e.g. --shard 0/4`);
  }
  return { index, count };
}

/** What a diff run collects over. */
export interface DiffRunOptions extends PairRunOptions {
  sae: string;
  layer: number;
  /** The whole run's prompts (after sampling); a shard reads its slice of them. */
  prompts: readonly string[];
  shard?: ShardSpec;
  tokenTypes: TokenType[];
  /** Checkpoint every this many batches (0: never). */
  checkpointEvery: number;
  resume: boolean;
  outDir: string;
  /** Top examples to keep per feature and token type (default {@linkcode DEFAULT_TOP_EXAMPLES}; 0: none). */
  topExamples?: number;
  /** The SAE's Neuronpedia id when known from outside its files (a preset). */
  neuronpediaId?: string;
  progress?: StartProgress;
  /**
   * Read the residuals back to the host and upload them to the encoder again even where both share
   * the GPU (the bench's comparison; the statistics are the same).
   */
  hostRoundTrip?: boolean;
}

/** What a collection did. */
export interface DiffCollection {
  fingerprint: string;
  prompts: number;
  /** Prompts whose assistant header was not found (read at the last token). */
  fallbacks: number;
  truncated: number;
}

/**
 * Collects both models' statistics for the run (or its shard) into `stats_{base,chat}[.shard-i-of-n]`
 * in `outDir`, checkpointing and resuming as asked.
 */
export async function collectDiff(options: DiffRunOptions): Promise<DiffCollection> {
  const run = await prepareDiffRun(options);
  try {
    for (const model of DIFF_MODELS) await collectModel(run, model);
  } finally {
    run.encoder.destroy();
  }
  // The dashboards show the prompts of the top examples, which the lists name by index. Written
  // last, so a run that fails leaves an earlier run's prompts.json to that run's statistics.
  if (run.topExamples > 0) await writeRunPrompts(options.outDir, options.prompts);
  return run.summary;
}

/** Everything a diff run settles before either model runs. */
type DiffRun = Awaited<ReturnType<typeof prepareDiffRun>>;

/**
 * The run's models resolved (and checked to be a pair), its layer checked, its SAE loaded and its
 * encoder made, its fingerprint, and its prompts formatted and read-positioned.
 */
async function prepareDiffRun(options: DiffRunOptions) {
  const log = options.log ?? (() => {});
  await ensureOutDir(options.outDir);
  // The directories of the graphs that will run (a checkpoint's at its dtype), so the fingerprint's
  // identities cover the precision too.
  const pair = await resolveModelPair(options, "a diff needs two versions of one model");
  const { chatDir, dtype } = pair;
  const shape = await readModelShape(chatDir);
  checkLayer(options.layer, shape.layers);
  const sae = await loadSae(options.sae, { dModel: shape.dModel, layers: shape.layers });
  if (sae.config.hookLayer !== undefined && sae.config.hookLayer !== options.layer) {
    console.error(`warning: the SAE was trained on layer ${sae.config.hookLayer}, reading layer ${options.layer}`);
  }
  const plan = await planDiff({
    models: {
      base: { source: pair.base.source, identity: pair.base.identity.content },
      chat: { source: pair.chat.source, identity: pair.chat.identity.content },
    },
    sae,
    saeSource: options.sae,
    saeIdentity: await saeIdentity(sae),
    // From the resolved directory: a checkpoint's source would be built again at the default precision.
    tokenizer: await loadTokenizer(chatDir),
    prompts: options.prompts,
    shard: options.shard,
    layer: options.layer,
    tokenTypes: options.tokenTypes,
    batchSize: options.batchSize,
    maxLength: options.maxLength,
    topExamples: options.topExamples ?? DEFAULT_TOP_EXAMPLES,
    device: options.device,
    dtype,
    neuronpediaId: options.neuronpediaId,
  });
  // Last: the encoder holds GPU buffers, which an error above would otherwise leave behind.
  const encoder = await createEncoder(sae, options.device, { log });
  return { options, log, pair, plan, encoder, topExamples: plan.topExamples, summary: plan.summary };
}

/** Collects one model's statistics over the run's prompts into its stats file (resuming its checkpoint if asked). */
async function collectModel(run: DiffRun, model: DiffModel): Promise<void> {
  const { options, pair, plan } = run;
  const handle = await loadForCapture(pair[model], [options.layer], {
    device: options.device,
    dtype: plan.dtype,
    cut: true,
    // Residuals stay on the GPU when the encoder runs there (the same device: lib/backend/ort_web.ts).
    outputsOnGpu: run.encoder.encodeGatheredInto !== undefined && !options.hostRoundTrip,
    log: run.log,
  });
  const checkpoint = fileCheckpoint(join(options.outDir, checkpointFileName(model, plan.shard)));
  try {
    const bytes = await collectDiffModel(plan, model, handle, run.encoder, {
      checkpoint,
      checkpointEvery: options.checkpointEvery,
      resume: options.resume,
      progress: options.progress?.(`${model} model`, plan.prepared.length),
      log: run.log,
    });
    await writeFileAtomic(statsPath(options.outDir, model, plan.shard), bytes);
    await checkpoint.remove();
  } finally {
    await handle.dispose();
  }
}

type StatsFile = Awaited<ReturnType<typeof readRunStats>>;

/**
 * Merges the shard statistics in `outDir` (every shard of one run, both models) into
 * `stats_{base,chat}.safetensors`. Shards of different runs, missing shards or overlapping ranges
 * are refused in one line.
 */
export async function mergeDiffShards(outDir: string): Promise<{ shards: number; prompts: number }> {
  const entries = await Array.fromAsync(Deno.readDir(outDir)).catch(() => [] as Deno.DirEntry[]);
  const byModel = new Map<DiffModel, { index: number; count: number; file: StatsFile }[]>();
  for (const model of DIFF_MODELS) {
    const shards = [];
    for (const entry of entries) {
      const named = parseStatsFileName(entry.name);
      if (named?.model === model && named.shard) {
        shards.push({ ...named.shard, file: await readRunStats(join(outDir, entry.name)) });
      }
    }
    shards.sort((a, b) => a.index - b.index);
    byModel.set(model, shards);
  }
  const all = [...byModel.values()].flat();
  const fingerprints = [...new Set(all.map((s) => s.file.metadata.run_fingerprint))];
  if (fingerprints.length > 1) {
    throw new UserError(
      `${outDir} holds shards of ${fingerprints.length} different runs (other prompts, models, SAE or settings): keep one run's shards per directory`,
    );
  }
  let prompts = 0;
  for (const [model, shards] of byModel) {
    const count = shards[0]?.count;
    const indices = shards.map((s) => s.index).join();
    const expected = Array.from({ length: count ?? 0 }, (_, i) => i).join();
    if (!count || shards.some((s) => s.count !== count) || indices !== expected) {
      throw new UserError(
        `--merge needs every shard of the ${model} model in ${outDir} (found ${shards.length}${
          count ? ` of ${count}` : ""
        }); run the missing --shard i/${count ?? "n"} first`,
      );
    }
    // Contiguous ranges that tile the run's prompts, or the shards are not one run's slices.
    let next = 0;
    for (const { file } of shards) {
      const [start, end] = file.metadata.prompt_range;
      if (start !== next) throw new UserError(`the shards in ${outDir} do not cover the prompts contiguously`);
      next = end;
    }
    let merged: FeatureStats | undefined;
    // The shards' prompt indices are the run's, so their lists merge as they are.
    let examples: TopExamples | undefined;
    const sum = (key: "num_prompts" | "header_fallbacks" | "truncated") =>
      shards.reduce((n, s) => n + s.file.metadata[key], 0);
    for (const { file } of shards) {
      if (!merged) [merged, examples] = [file.stats, file.examples];
      else {
        merged.merge(file.stats);
        if (file.examples) examples?.merge(file.examples);
      }
    }
    prompts = sum("num_prompts");
    await writeStats(
      statsPath(outDir, model),
      merged!,
      {
        ...shards[0].file.metadata,
        num_prompts: prompts,
        header_fallbacks: sum("header_fallbacks"),
        truncated: sum("truncated"),
        shard: null,
        prompt_range: [0, next],
        merged_shards: count,
      } satisfies StatsMetadata,
      examples,
    );
  }
  return { shards: byModel.get("base")!.length, prompts };
}

/** What the report wrote and the top rows per metric, for printing. */
export interface DiffReport {
  tables: Record<DiffMetric, DiffRow[]>;
  files: string[];
  title: string;
  prompts: number;
  features: number;
}

/** Options of {@linkcode writeDiffReport}. */
export interface ReportOptions {
  /** Rows per token type in the tables. */
  topK: number;
  decreases: boolean;
  /**
   * Feature dashboards (`features.html`) for the first this many rows per token type of each table
   * (0 or absent: none; they also need top examples in the statistics and a `device`).
   */
  cards?: number;
  /** Where the dashboards run the prompts of the top examples again. */
  device?: Device;
  /** Where Neuronpedia explanations come from (default: neuronpedia.org, cached). */
  explanations?: ExplanationOptions;
  log?: (line: string) => void;
}

/**
 * Diffs `stats_base` against `stats_chat` in `outDir` (they must come from one run) and writes
 * `top_{metric}.csv` (and `top_decreases_*` when asked), `feature_increases.html` and, when asked and
 * the statistics hold top examples, the feature dashboards `features.html`, linked from it.
 */
export async function writeDiffReport(outDir: string, options: ReportOptions): Promise<DiffReport> {
  const [base, chat] = await Promise.all(DIFF_MODELS.map((m) => readRunStats(statsPath(outDir, m))));
  const stats = { base, chat };
  const out = dirOutput(outDir);
  const labels = { base: statsPath(outDir, "base"), chat: statsPath(outDir, "chat") };
  const diff = await writeDiffTables(stats, out, { topK: options.topK, decreases: options.decreases, labels });
  const { tables, files, title } = diff;
  let dashboards: { cards: number } | undefined;
  let failure: unknown;
  if (options.cards && options.device && base.examples && chat.examples) {
    try {
      dashboards = await writeDashboards({
        outDir,
        title,
        tables,
        files: { base, chat },
        cards: options.cards,
        device: options.device,
        explanations: options.explanations,
        log: options.log,
      });
    } catch (error) {
      // The figure is still written (without the link) before the dashboards' error is reported.
      failure = error;
    }
  }
  const link = dashboards ? dashboardsLink(dashboards.cards, options.cards!) : "";
  await writeFeatureIncreasesPage(stats, diff, out, link);
  if (failure) throw failure;
  files.push("feature_increases.html", ...(dashboards ? ["features.html"] : []));
  files.push("stats_base.safetensors", "stats_chat.safetensors");
  return {
    tables,
    files,
    title,
    prompts: chat.metadata.num_prompts,
    features: chat.metadata.num_features,
  };
}
