/**
 * `deno task diff`: base vs chat SAE feature diffing (the first notebook). Collects per-feature
 * statistics of both models at the assistant-header tokens, then reports the features whose
 * activation rises most in the chat model: `top_{metric}.csv` and `feature_increases.html`.
 * Without arguments it runs the built-in demo on the generated tiny models.
 *
 * Large runs: `--shard i/n` collects one slice of the prompts (e.g. one Slurm/Kubernetes array task
 * each), then `--merge` combines the shard statistics and writes the report.
 */

import { join } from "node:path";
import { loadForCapture } from "../lib/activations.ts";
import { parseTokenTypes, preparePrompts, TOKEN_TYPES, type TokenType } from "../lib/chat.ts";
import { parseFlags, positiveInt } from "../lib/cli.ts";
import { collectStats, readStats, writeStats } from "../lib/collect.ts";
import {
  DIFF_METRICS,
  type DiffMetric,
  type DiffRow,
  type MetricTable,
  topChanges,
  writeDiffCsv,
} from "../lib/diff.ts";
import { runMain, UserError } from "../lib/errors.ts";
import { ensureFixtureModel, ensureFixtureSae } from "../lib/fixtures/build.ts";
import { DEMO_PROMPTS } from "../lib/fixtures/prompts.ts";
import { acquireGpu } from "../lib/gpu.ts";
import { readModelShape, resolveModelDir } from "../lib/hub.ts";
import { readPromptFile, samplePrompts } from "../lib/io/prompts.ts";
import { SaeEncoder } from "../lib/kernels/sae_encode.ts";
import { DIFF_PRESETS } from "../lib/presets.ts";
import { ProgressBar } from "../lib/progress.ts";
import { featureIncreasesFigure } from "../lib/report/figures.ts";
import { neuronpediaId } from "../lib/neuronpedia.ts";
import { writePlotlyPage } from "../lib/report/plotly.ts";
import { loadTokenizer, parseDevice } from "../lib/runtime.ts";
import { loadSae } from "../lib/sae/load.ts";
import { FeatureStats } from "../lib/stats.ts";

const USAGE = "deno task diff [--preset llama31-8b|gemma2-9b] [--base M] [--chat M] [--sae S] [--layer L] " +
  "[--prompts FILE] [--n N] [--seed S] [--batch-size B] [--max-length T] [--token-types asst,endheader,newline] " +
  "[--top-k K] [--decreases] [--out-dir DIR] [--device webgpu|cpu] [--checkpoint-every K] [--resume] " +
  "[--shard i/n] [--merge]";

const MODELS = ["base", "chat"] as const;

function parseShard(value: string | undefined): { index: number; count: number } | undefined {
  if (value === undefined) return undefined;
  const match = /^(\d+)\/(\d+)$/.exec(value);
  const [index, count] = match ? [Number(match[1]), Number(match[2])] : [NaN, NaN];
  if (!match || count < 1 || index >= count) {
    throw new UserError(`bad --shard "${value}": use i/n with 0 <= i < n, e.g. --shard 0/4`);
  }
  return { index, count };
}

const statsFile = (dir: string, model: string, shard?: { index: number; count: number }) =>
  join(dir, shard ? `stats_${model}.shard-${shard.index}-of-${shard.count}.safetensors` : `stats_${model}.safetensors`);

await runMain(async () => {
  const { values } = parseFlags(Deno.args, {
    preset: { type: "string" },
    base: { type: "string" },
    chat: { type: "string" },
    sae: { type: "string" },
    layer: { type: "string" },
    prompts: { type: "string" },
    n: { type: "string" },
    seed: { type: "string", default: "42" },
    "batch-size": { type: "string" },
    "max-length": { type: "string" },
    "token-types": { type: "string", default: TOKEN_TYPES.join(",") },
    "top-k": { type: "string" },
    decreases: { type: "boolean", default: false },
    "out-dir": { type: "string" },
    device: { type: "string", default: "webgpu" },
    "checkpoint-every": { type: "string" },
    resume: { type: "boolean", default: false },
    shard: { type: "string" },
    merge: { type: "boolean", default: false },
  }, USAGE);
  const preset = values.preset ? DIFF_PRESETS[values.preset] : undefined;
  if (values.preset && !preset) {
    throw new UserError(`unknown preset "${values.preset}": use ${Object.keys(DIFF_PRESETS).join(" or ")}`);
  }
  const demo = !preset && !values.base && !values.chat;
  const tokenTypes = parseTokenTypes(values["token-types"]!);
  const topK = positiveInt("top-k", values["top-k"], 100);
  const shard = parseShard(values.shard);
  const outDir = values["out-dir"] ?? (demo ? "results/diff-demo" : "results/diff");

  if (!values.merge) {
    const device = parseDevice(values.device!);
    const batchSize = positiveInt("batch-size", values["batch-size"], 32);
    const maxLength = positiveInt("max-length", values["max-length"], 512);
    const checkpointEvery = values["checkpoint-every"] === undefined ? 10 : Number(values["checkpoint-every"]);
    const base = values.base ?? preset?.base ?? await ensureFixtureModel("tiny-llama-base", console.log);
    const chat = values.chat ?? preset?.chat ?? await ensureFixtureModel("tiny-llama-chat", console.log);
    const saeSource = values.sae ?? preset?.sae ?? await ensureFixtureSae("tiny-llama-sae-llamascope", console.log);
    const shape = await readModelShape(await resolveModelDir(chat));
    await readModelShape(await resolveModelDir(base));
    const layer = values.layer !== undefined ? Number(values.layer) : preset?.layer ?? 2;
    if (!Number.isInteger(layer) || layer < 0 || layer >= shape.layers) {
      throw new UserError(
        `layer ${values.layer ?? layer} is out of range: this model has layers 0..${shape.layers - 1}`,
      );
    }
    const sae = await loadSae(saeSource, { dModel: shape.dModel });
    if (sae.config.hookLayer !== undefined && sae.config.hookLayer !== layer) {
      console.error(`warning: the SAE was trained on layer ${sae.config.hookLayer}, reading layer ${layer}`);
    }
    const all = values.prompts ? await readPromptFile(values.prompts) : [...DEMO_PROMPTS];
    const sampled = samplePrompts(
      all,
      values.n === undefined ? undefined : positiveInt("n", values.n, 1),
      Number(values.seed),
    );
    const slice = shard
      ? sampled.slice(
        Math.floor(shard.index * sampled.length / shard.count),
        Math.floor((shard.index + 1) * sampled.length / shard.count),
      )
      : sampled;
    const gpu = await acquireGpu({ log: console.log });
    const encoder = await SaeEncoder.create(gpu, sae);
    // Prompts are formatted with the chat model's template for both models, as the notebook does.
    const prepared = preparePrompts(await loadTokenizer(chat), slice, { maxLength, types: tokenTypes });
    const fallbacks = prepared.filter((p) => !p.headerFound).length;
    const truncated = prepared.filter((p) => p.truncated).length;
    for (const [model, source] of [["base", base], ["chat", chat]] as const) {
      const handle = await loadForCapture(source, [layer], { device, cut: true, log: console.log });
      const settings = { model: source, layer, sae: saeSource, tokenTypes, maxLength, batchSize, prompts: slice };
      const runKey = JSON.stringify(settings);
      const progress = new ProgressBar(`${model} model`, prepared.length, "prompts");
      const stats = await collectStats({
        handle,
        encoder,
        layer,
        prompts: prepared,
        tokenTypes,
        batchSize,
        checkpointEvery,
        checkpointPath: join(outDir, `checkpoint_${model}${shard ? `.shard-${shard.index}` : ""}.safetensors`),
        runKey,
        resume: values.resume,
        onProgress: (done) => progress.update(done),
      });
      progress.finish();
      await writeStats(statsFile(outDir, model, shard), stats, {
        source: `${model}_layer${layer}`,
        model: source,
        model_ver: model,
        sae_layer: layer,
        sae: saeSource,
        sae_format: sae.config.format,
        neuronpedia_id: neuronpediaId({
          explicit: preset?.neuronpediaId ?? sae.config.neuronpediaId,
          format: sae.config.format,
          modelName: sae.config.modelName,
          layer,
          dSae: sae.config.dSae,
        }) ?? null,
        num_prompts: prepared.length,
        num_features: sae.config.dSae,
        token_types: tokenTypes,
        header_fallbacks: fallbacks,
        truncated,
        shard: shard ? `${shard.index}/${shard.count}` : null,
      });
      await Deno.remove(join(outDir, `checkpoint_${model}${shard ? `.shard-${shard.index}` : ""}.safetensors`)).catch(
        () => {},
      );
      await handle.dispose();
    }
    encoder.destroy();
    console.log(
      `${prepared.length} prompts; header not found in ${fallbacks} (read at the last token); ${truncated} truncated to ${maxLength} tokens`,
    );
    if (shard) {
      console.log(
        `shard ${shard.index}/${shard.count} statistics written to ${outDir}; run with --merge when all shards are done`,
      );
      return;
    }
  } else {
    for (const model of MODELS) await mergeShards(outDir, model);
  }
  await report(outDir, tokenTypes, topK, values.decreases);
});

/** Merges `stats_{model}.shard-i-of-n` files (all n of them) into `stats_{model}.safetensors`. */
async function mergeShards(outDir: string, model: string): Promise<void> {
  const shards: { index: number; count: number; path: string }[] = [];
  const entries = await Array.fromAsync(Deno.readDir(outDir)).catch(() => []);
  for (const entry of entries) {
    const match = new RegExp(`^stats_${model}\\.shard-(\\d+)-of-(\\d+)\\.safetensors$`).exec(entry.name);
    if (match) shards.push({ index: Number(match[1]), count: Number(match[2]), path: join(outDir, entry.name) });
  }
  const count = shards[0]?.count;
  if (!count || shards.length !== count || shards.some((s) => s.count !== count)) {
    throw new UserError(
      `--merge needs every shard of the ${model} model in ${outDir} (found ${shards.length}${
        count ? ` of ${count}` : ""
      })`,
    );
  }
  shards.sort((a, b) => a.index - b.index);
  let merged: FeatureStats | undefined;
  let metadata: Record<string, unknown> = {};
  let prompts = 0;
  let fallbacks = 0;
  let truncated = 0;
  for (const shard of shards) {
    const part = await readStats(shard.path);
    if (!merged) {
      merged = part.stats;
      metadata = part.metadata;
    } else merged.merge(part.stats);
    prompts += Number(part.metadata.num_prompts);
    fallbacks += Number(part.metadata.header_fallbacks);
    truncated += Number(part.metadata.truncated);
  }
  await writeStats(statsFile(outDir, model), merged!, {
    ...metadata,
    num_prompts: prompts,
    header_fallbacks: fallbacks,
    truncated,
    shard: null,
    merged_shards: count,
  });
}

/** Diffs the two stats files in `outDir` and writes the tables and the figure. */
async function report(outDir: string, tokenTypes: TokenType[], topK: number, decreases: boolean): Promise<void> {
  const [base, chat] = await Promise.all(MODELS.map((m) => readStats(statsFile(outDir, m))));
  const table = (stats: FeatureStats): MetricTable => {
    const metrics = stats.finalize();
    return Object.fromEntries(tokenTypes.map((t) => [t, metrics[t]])) as MetricTable;
  };
  const [b, c] = [table(base.stats), table(chat.stats)];
  const id = (chat.metadata.neuronpedia_id as string | null) ?? undefined;
  const tables = {} as Record<DiffMetric, DiffRow[]>;
  for (const metric of DIFF_METRICS) {
    tables[metric] = topChanges(b, c, metric, tokenTypes, topK, { neuronpediaId: id });
    await writeDiffCsv(join(outDir, `top_${metric}.csv`), tables[metric], metric);
    if (decreases) {
      const down = topChanges(b, c, metric, tokenTypes, topK, { neuronpediaId: id, decreases: true });
      await writeDiffCsv(join(outDir, `top_decreases_${metric}.csv`), down, metric);
    }
  }
  await writePlotlyPage(
    join(outDir, "feature_increases.html"),
    "feature increases",
    featureIncreasesFigure(
      tables,
      tokenTypes,
      `${base.metadata.model} → ${chat.metadata.model} (layer ${chat.metadata.sae_layer})`,
    ),
  );
  console.log(
    `\ntop increases chat - base (${chat.metadata.num_prompts} prompts, ${chat.metadata.num_features} features):`,
  );
  for (const metric of DIFF_METRICS) {
    console.log(`  ${metric}:`);
    for (const row of tables[metric].slice(0, 5)) {
      console.log(
        `    ${row.token.padEnd(9)} feature ${String(row.featureId).padStart(6)}  base ${row.base.toFixed(4)}  chat ${
          row.chat.toFixed(4)
        }  diff ${row.diff.toFixed(4)}${row.link ? `  ${row.link}` : ""}`,
      );
    }
  }
  console.log(
    `\nresults in ${outDir}: top_all_mean.csv, top_active_mean.csv, top_sparsity.csv, feature_increases.html, stats_base.safetensors, stats_chat.safetensors`,
  );
}
