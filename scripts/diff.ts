/**
 * `deno task diff`: base vs chat SAE feature diffing (the first notebook). Collects per-feature
 * statistics of both models at the assistant-header tokens, then reports the features whose
 * activation rises most in the chat model: `top_{metric}.csv`, `feature_increases.html` and the feature
 * dashboards `features.html` (each top feature's top activating prompts in both models).
 * Without arguments it runs the built-in demo on the generated tiny models.
 *
 * Large runs: `--shard i/n` collects one slice of the prompts (e.g. one Slurm/Kubernetes array task
 * each), then `--merge` combines the shard statistics and writes the report.
 */

import { parseTokenTypes } from "../lib/runtime/chat.ts";
import { layerFlag, nonNegativeInt, parseFlags, positiveInt } from "../lib/cli/flags.ts";
import { DIFF, DIFF_DEFAULTS } from "../lib/cli/commands.ts";
import { runMain } from "../lib/cli/main.ts";
import { UserError } from "../lib/core/errors.ts";
import { ensureFixtureModel, ensureFixtureSae } from "../lib/fixtures/build.ts";
import { plantRecoveryLines } from "../lib/fixtures/plant.ts";
import { diffSummary, reportLinks } from "../lib/run/diff_summary.ts";
import { DEMO_PROMPTS } from "../lib/fixtures/prompts.ts";
import { sampledPromptsFromFlags } from "../lib/cli/prompts.ts";
import { DIFF_PRESETS } from "../lib/cli/presets.ts";
import { saeReleaseOf } from "../lib/sae/load.ts";
import { promptBars } from "../lib/io/progress.ts";
import { type Device, parseDevice, resolveDevice } from "../lib/backend/device.ts";
import { parseDtype } from "../lib/runtime/runtime.ts";
import {
  collectDiff,
  DEFAULT_TOP_EXAMPLES,
  mergeDiffShards,
  parseShard,
  shardOf,
  writeDiffReport,
} from "../lib/run/diff_run.ts";

await runMain(async () => {
  const { values } = parseFlags(Deno.args, DIFF);
  const preset = values.preset ? DIFF_PRESETS[values.preset] : undefined;
  if (values.preset && !preset) {
    throw new UserError(`unknown preset "${values.preset}": use ${Object.keys(DIFF_PRESETS).join(" or ")}`);
  }
  const demo = !preset && !values.base && !values.chat;
  const topK = positiveInt("top-k", values["top-k"], DIFF_DEFAULTS.topK);
  const shard = values.shard === undefined ? undefined : parseShard(values.shard);
  const outDir = values["out-dir"] ?? (demo ? "results/diff-demo" : "results/diff");
  const cards = nonNegativeInt("cards", values.cards, DIFF_DEFAULTS.cards);
  let device: Device | undefined;

  if (values.merge) {
    const merged = await mergeDiffShards(outDir);
    console.log(`merged ${merged.shards} shards (${merged.prompts} prompts) in ${outDir}`);
  } else if (!values["report-only"]) {
    const prompts = await sampledPromptsFromFlags(values, DEMO_PROMPTS, console.log);
    // A SAELens release id knows its layer; resolving it here also makes an unknown release or id
    // one line before any model is loaded.
    const release = values.sae ? await saeReleaseOf(values.sae) : undefined;
    const layer = values.layer !== undefined
      ? layerFlag(values.layer)
      : release?.layer ?? preset?.layer ?? DIFF_DEFAULTS.layer;
    device = await resolveDevice(parseDevice(values.device!), console.log);
    const collected = await collectDiff({
      base: values.base ?? preset?.base ?? await ensureFixtureModel("tiny-llama-base", console.log),
      chat: values.chat ?? preset?.chat ?? await ensureFixtureModel("tiny-llama-chat", console.log),
      sae: values.sae ?? preset?.sae ?? await ensureFixtureSae("tiny-llama-sae-llamascope", console.log),
      layer,
      prompts,
      shard: shard && shardOf(prompts.length, shard.index, shard.count),
      tokenTypes: parseTokenTypes(values["token-types"]!),
      batchSize: positiveInt("batch-size", values["batch-size"], DIFF_DEFAULTS.batchSize),
      maxLength: positiveInt("max-length", values["max-length"], DIFF_DEFAULTS.maxLength),
      checkpointEvery: nonNegativeInt("checkpoint-every", values["checkpoint-every"], DIFF_DEFAULTS.checkpointEvery),
      resume: values.resume,
      device,
      topExamples: nonNegativeInt("top-examples", values["top-examples"], DEFAULT_TOP_EXAMPLES),
      dtype: parseDtype(values.dtype),
      outDir,
      allowMismatch: values["allow-mismatch"],
      // The preset's id belongs to the preset's SAE; another --sae brings its own (a release's, from the table).
      neuronpediaId: values.sae ? undefined : preset?.neuronpediaId,
      log: console.log,
      progress: promptBars,
    });
    console.log(
      `${collected.prompts} prompts; header not found in ${collected.fallbacks} (read at the last token); ${collected.truncated} truncated`,
    );
    if (shard) {
      console.log(
        `shard ${shard.index}/${shard.count} statistics written to ${outDir}; run with --merge when all shards are done`,
      );
      return;
    }
  }
  // After a merge or for a report only, the device is resolved only if the dashboards need one.
  if (cards && !device) device = await resolveDevice(parseDevice(values.device!), console.log);
  const report = await writeDiffReport(outDir, { topK, decreases: values.decreases, cards, device, log: console.log });
  for (const line of diffSummary(report)) console.log(line);
  if (demo && !values["report-only"]) {
    for (const line of plantRecoveryLines(report.tables, "llama")) console.log(line);
  }
  for (const line of reportLinks(report, outDir)) console.log(line);
});
