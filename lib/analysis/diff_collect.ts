/**
 * One diff run's collection, wherever it runs: the plan (fingerprint, prompts formatted and
 * read-positioned) and one model's statistics file, from a loaded model handle and an SAE encoder.
 * The CLI (lib/run/diff_run.ts) and the page (web/) resolve models, SAE and storage their own way
 * and both call these, so a run gives the same file, and can be resumed or merged, in either.
 *
 * @module
 */

import { NonFiniteInputError, UserError } from "../core/errors.ts";
import type { Progress } from "../core/progress.ts";
import { sha256Hex } from "../core/sha256.ts";
import type { ModelHandle } from "../runtime/runtime.ts";
import { preparePrompts, renderNormal, type TokenType } from "../runtime/chat.ts";
import type { Sae } from "../sae/config.ts";
import type { FeatureEncoder } from "../sae/feature_encoder.ts";
import { neuronpediaId } from "../features/neuronpedia.ts";
import type { GraphDtype } from "../models/decoder_graph.ts";
import { type CheckpointStore, collectStats } from "./collect.ts";
import { type DiffModel, encodeStats, type StatsMetadata } from "./stats_file.ts";

/** One slice of a run's prompts: `[start, end)`, shard `index` of `count`. */
export interface ShardSpec {
  index: number;
  count: number;
  start: number;
  end: number;
}

/** Top examples kept per feature and token type unless a run says otherwise. */
export const DEFAULT_TOP_EXAMPLES = 10;

/** The digest of a run's prompts, as its statistics files and prompts.json record it. */
export function promptsDigest(prompts: readonly string[]): Promise<string> {
  return sha256Hex([JSON.stringify(prompts)]);
}

/** `layer` checked against a model of `layers` layers, in one line. */
export function checkLayer(layer: number, layers: number): void {
  if (!Number.isInteger(layer) || layer < 0 || layer >= layers) {
    throw new UserError(`layer ${layer} is out of range: this model has layers 0..${layers - 1}`);
  }
}

/**
 * The fingerprint of a run: every input that determines its statistics. Shards of one run share it
 * (the shard is not part of it); prompts enter only as a digest.
 */
export async function diffFingerprint(parts: {
  prompts: readonly string[];
  base: string;
  chat: string;
  sae: string;
  layer: number;
  tokenTypes: readonly string[];
  batchSize: number;
  maxLength: number;
  topExamples: number;
  /** cpu or webgpu: their f32 results differ in the last bits, so their parts never mix. */
  device: string;
  /** A probe prompt as the chat template renders it today. */
  template: string;
}): Promise<string> {
  const prompts = await promptsDigest(parts.prompts);
  return (await sha256Hex([JSON.stringify({ version: 1, ...parts, prompts })])).slice(0, 32);
}

/** What a diff run is over, once its models and SAE are resolved. */
export interface DiffPlanInputs {
  /** Each model as the user named it, and its content identity. */
  models: Record<DiffModel, { source: string; identity: string }>;
  sae: Sae;
  /** The SAE as the user named it. */
  saeSource: string;
  saeIdentity: string;
  /** The chat model's tokenizer: prompts are formatted with its template for both models, as the notebook does. */
  tokenizer: Pick<ModelHandle, "tokenizer" | "config" | "source">;
  /** The whole run's prompts (after sampling); a shard reads its slice of them. */
  prompts: readonly string[];
  shard?: ShardSpec;
  layer: number;
  tokenTypes: TokenType[];
  batchSize: number;
  maxLength: number;
  topExamples: number;
  device: string;
  dtype: GraphDtype;
  /** The SAE's Neuronpedia id when known from outside its files (a preset). */
  neuronpediaId?: string;
}

/** A planned run: its inputs, fingerprint and prompts, read-positioned. */
export interface DiffPlan extends DiffPlanInputs {
  fingerprint: string;
  digest: string;
  prepared: ReturnType<typeof preparePrompts>;
  summary: { fingerprint: string; prompts: number; fallbacks: number; truncated: number };
}

/** Fingerprints the run and formats and read-positions its prompts (the shard's slice). */
export async function planDiff(inputs: DiffPlanInputs): Promise<DiffPlan> {
  const fingerprint = await diffFingerprint({
    prompts: inputs.prompts,
    base: inputs.models.base.identity,
    chat: inputs.models.chat.identity,
    sae: inputs.saeIdentity,
    layer: inputs.layer,
    tokenTypes: inputs.tokenTypes,
    batchSize: inputs.batchSize,
    maxLength: inputs.maxLength,
    topExamples: inputs.topExamples,
    device: inputs.device,
    // What the template renders, not just its text: a template that writes today's date (Llama 3.2's
    // default system prompt) renders differently tomorrow, and a resume or merge must not mix the two.
    template: renderNormal(inputs.tokenizer, "\u2063probe\u2063"),
  });
  const shard = inputs.shard;
  const slice = shard ? inputs.prompts.slice(shard.start, shard.end) : inputs.prompts;
  const prepared = preparePrompts(inputs.tokenizer, slice, { maxLength: inputs.maxLength, types: inputs.tokenTypes });
  return {
    ...inputs,
    fingerprint,
    digest: await promptsDigest(inputs.prompts),
    prepared,
    summary: {
      fingerprint,
      prompts: prepared.length,
      fallbacks: prepared.filter((p) => !p.headerFound).length,
      truncated: prepared.filter((p) => p.truncated).length,
    },
  };
}

/**
 * What one model's collection (and its checkpoint) is keyed by: the run's fingerprint, the model and
 * the shard's prompt range.
 */
export function modelFingerprint(plan: Pick<DiffPlan, "fingerprint" | "shard">, model: DiffModel): string {
  const shard = plan.shard;
  return `${plan.fingerprint}:${model}:${shard ? `${shard.start}-${shard.end}` : "all"}`;
}

/** How one model's collection keeps its checkpoint and reports progress. */
export interface CollectModelOptions {
  checkpoint: CheckpointStore;
  checkpointEvery: number;
  resume: boolean;
  progress?: Progress;
  log?: (line: string) => void;
}

/**
 * Collects `model`'s statistics over the plan's prompts with `handle` (the model cut after the
 * layer, capturing it) and `encoder`, resuming the checkpoint if asked, and returns its statistics
 * file's bytes (the caller removes the checkpoint once they are stored).
 */
export async function collectDiffModel(
  plan: DiffPlan,
  model: DiffModel,
  handle: ModelHandle,
  encoder: FeatureEncoder,
  options: CollectModelOptions,
): Promise<Uint8Array> {
  const { shard, sae } = plan;
  const { stats, examples } = await collectStats({
    handle,
    encoder,
    layer: plan.layer,
    prompts: plan.prepared,
    tokenTypes: plan.tokenTypes,
    batchSize: plan.batchSize,
    checkpointEvery: options.checkpointEvery,
    checkpoint: options.checkpoint,
    fingerprint: modelFingerprint(plan, model),
    resume: options.resume,
    log: options.log,
    onProgress: (done) => options.progress?.update(done),
    topExamples: plan.topExamples,
    firstPrompt: shard?.start ?? 0,
  }).catch((error) => {
    if (!(error instanceof NonFiniteInputError)) throw error;
    throw new UserError(
      `the ${model} model ${plan.models[model].source} gives NaN or infinite residuals at layer ${plan.layer}: ` +
        `its weights hold non-finite values (check or download them again) or it overflowed at ${plan.dtype} (try --dtype fp32)`,
    );
  });
  options.progress?.finish();
  const bytes = encodeStats(
    stats,
    {
      source: `${model}_layer${plan.layer}`,
      model: plan.models[model].source,
      model_ver: model,
      sae_layer: plan.layer,
      sae: plan.saeSource,
      sae_format: sae.config.format,
      // What the dashboards need to run the prompts of the top examples again, and to check that
      // the models and SAE are still the ones collected.
      dtype: plan.dtype,
      max_length: plan.maxLength,
      batch_size: plan.batchSize,
      prompts_digest: plan.digest,
      model_identity: plan.models[model].identity,
      sae_identity: plan.saeIdentity,
      neuronpedia_id: neuronpediaId({
        explicit: plan.neuronpediaId ?? sae.config.neuronpediaId,
        format: sae.config.format,
        modelName: sae.config.modelName,
        layer: plan.layer,
        dSae: sae.config.dSae,
      }) ?? null,
      run_fingerprint: plan.fingerprint,
      num_prompts: plan.summary.prompts,
      num_features: sae.config.dSae,
      token_types: plan.tokenTypes,
      header_fallbacks: plan.summary.fallbacks,
      truncated: plan.summary.truncated,
      shard: shard ? `${shard.index}/${shard.count}` : null,
      prompt_range: shard ? [shard.start, shard.end] : [0, plan.prompts.length],
    } satisfies StatsMetadata,
    examples,
  );
  return bytes;
}
