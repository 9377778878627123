/**
 * The feature dashboards of a diff run (`features.html`): for the top features of each table, both
 * models' top examples as collected, with the feature's activation at every token of those prompts,
 * computed after collection for just those prompts (each model run over all their positions and
 * encoded by the run's SAE), its statistics, and its Neuronpedia link and explanation.
 *
 * @module
 */

import { collectResiduals } from "../runtime/activations.ts";
import { loadForCapture } from "../runtime/runtime.ts";
import { type PreparedPrompt, preparePrompts, type TokenType } from "../runtime/chat.ts";
import { DIFF_MODELS, type DiffModel, type readRunStats } from "./stats_files.ts";
import type { Device } from "../backend/device.ts";
import { DIFF_METRICS, type DiffMetric, type DiffRow } from "../features/diff.ts";
import { UserError } from "../core/errors.ts";
import { readModelShape, resolveModelDir } from "../models/hub.ts";
import { modelIdentity } from "../models/identity.ts";
import { saeIdentity } from "../sae/identity.ts";
import { type Explanation, neuronpediaLink } from "../features/neuronpedia.ts";
import { type ExplanationOptions, ExplanationSource } from "../features/neuronpedia_api.ts";
import { type CardExample, type DashboardData, type FeatureCard, writeDashboardPage } from "../report/dashboards.ts";
import { dirOutput } from "../io/dir_output.ts";
import { type GraphDtype, loadTokenizer, type ModelHandle } from "../runtime/runtime.ts";
import type { Sae } from "../sae/config.ts";
import { createEncoder } from "../encoders/encoder.ts";
import { loadSae } from "../sae/load.ts";
import { METRICS } from "../features/stats.ts";
import { readRunPrompts } from "./run_prompts.ts";
import type { TopExample, TopExamples } from "../features/top_examples.ts";

type StatsFile = Awaited<ReturnType<typeof readRunStats>>;

/** The two models, in the order the cards show them. */

/** Options of {@linkcode writeDashboards}. */
export interface DashboardOptions {
  outDir: string;
  title: string;
  tables: Record<DiffMetric, DiffRow[]>;
  /** Both models' statistics files, with their top examples. */
  files: { base: StatsFile; chat: StatsFile };
  /** Cards for the first this many rows per read position of each table. */
  cards: number;
  /** Where the prompts are run again and encoded. */
  device: Device;
  explanations?: ExplanationOptions;
  log?: (line: string) => void;
}

/** A card to make: a feature at a read position, and its ranks in the tables. */
export interface CardChoice {
  feature: number;
  token: string;
  ranks: { metric: DiffMetric; rank: number }[];
}

/**
 * The features of the first `n` rows per read position of each table, once each (a feature in two
 * tables gets one card with both ranks), in the order the tables list them.
 */
export function chooseCards(tables: Record<DiffMetric, DiffRow[]>, n: number): CardChoice[] {
  const cards = new Map<string, CardChoice>();
  for (const metric of DIFF_METRICS) {
    for (const row of tables[metric]) {
      if (row.rank > n) continue;
      const key = `${row.featureId}:${row.token}`;
      if (!cards.has(key)) cards.set(key, { feature: row.featureId, token: row.token, ranks: [] });
      cards.get(key)!.ranks.push({ metric, rank: row.rank });
    }
  }
  return [...cards.values()];
}

/**
 * `sae` reduced to `features`, in that order: a ReLU, JumpReLU or gated feature's activation depends
 * on its own column only (a gated one's magnitude path too), so the few shown features are encoded
 * without the others. TopK picks among every
 * pre-activation of a row, so it stays whole. Returns the SAE and each feature's column in it.
 */
export function featureSubset(sae: Sae, features: number[]): { sae: Sae; column: Map<number, number> } {
  const { dIn, dSae } = sae.config;
  if (sae.config.architecture === "topk") {
    return { sae, column: new Map(features.map((f) => [f, f])) };
  }
  const m = features.length;
  const wEnc = new Float32Array(dIn * m);
  const wDec = new Float32Array(m * dIn);
  for (let i = 0; i < dIn; i++) features.forEach((f, c) => wEnc[i * m + c] = sae.wEnc[i * dSae + f]);
  features.forEach((f, c) => wDec.set(sae.wDec.subarray(f * dIn, (f + 1) * dIn), c * dIn));
  const pick = (a: Float32Array) => Float32Array.from(features, (f) => a[f]);
  return {
    sae: {
      config: { ...sae.config, dSae: m },
      wEnc,
      bEnc: pick(sae.bEnc),
      wDec,
      bDec: sae.bDec,
      threshold: pick(sae.threshold),
      ...(sae.magnitude && { magnitude: { scale: pick(sae.magnitude.scale), bias: pick(sae.magnitude.bias) } }),
    },
    column: new Map(features.map((f, c) => [f, c])),
  };
}

/** Rows per encode call: at most 64 MiB of activations at a time. */
function encodeRows(dSae: number): number {
  return Math.max(1, Math.floor(2 ** 24 / dSae));
}

/**
 * The activations of each request's features at every token of its prompt in one model (one map per
 * request, feature → values). Batches of `batchSize` prompts through the model cut after `layer`,
 * encoded in row chunks.
 */
async function tokenActivations(
  source: string,
  requests: { prompt: PreparedPrompt; features: number[] }[],
  run: { layer: number; batchSize: number; dtype: GraphDtype; device: Device; sae: Sae; log?: (line: string) => void },
): Promise<Map<number, number[]>[]> {
  const features = [...new Set(requests.flatMap((r) => r.features))].sort((a, b) => a - b);
  if (!features.length) return requests.map(() => new Map());
  const { sae, column } = featureSubset(run.sae, features);
  const encoder = await createEncoder(sae, run.device, { log: run.log });
  let handle: ModelHandle | undefined;
  const out: Map<number, number[]>[] = [];
  try {
    handle = await loadForCapture(source, [run.layer], { device: run.device, dtype: run.dtype, log: run.log });
    const { dIn, dSae } = sae.config;
    const chunk = encodeRows(dSae);
    for (let start = 0; start < requests.length; start += run.batchSize) {
      const batch = requests.slice(start, start + run.batchSize);
      const prompts = batch.map((r) => r.prompt);
      const collected = await collectResiduals(handle, prompts, [run.layer], { kind: "all" }, run.batchSize);
      const x = collected.byLayer.get(run.layer)!;
      const rows = collected.offsets.at(-1)!;
      const f = new Float32Array(rows * dSae);
      for (let from = 0; from < rows; from += chunk) {
        const n = Math.min(chunk, rows - from);
        f.set(await encoder.encode(x.subarray(from * dIn, (from + n) * dIn), n), from * dSae);
      }
      batch.forEach((request, b) => {
        const [first, end] = [collected.offsets[b], collected.offsets[b + 1]];
        out.push(
          new Map(request.features.map((feature) => {
            const c = column.get(feature)!;
            return [feature, Array.from({ length: end - first }, (_, r) => f[(first + r) * dSae + c])];
          })),
        );
      });
    }
  } finally {
    encoder.destroy();
    await handle?.dispose();
  }
  return out;
}

/** Refuses a model or SAE that is no longer the one the statistics were collected with, in one line. */
function checkIdentity(what: string, now: string, then: unknown): void {
  if (now !== then) {
    throw new UserError(
      `${what} is not the one the statistics were collected with (it changed since): the dashboards would not match them; collect again, or pass --cards 0`,
    );
  }
}

/** A card's explanation as the page shows it. */
function explanationOf(found: Explanation[] | undefined, hasId: boolean): FeatureCard["explanation"] {
  if (!hasId) return { texts: [], note: "no Neuronpedia id for this SAE" };
  if (!found) return { texts: [], note: "no explanation cached" };
  if (!found.length) return { texts: [], note: "Neuronpedia has no explanation of this feature" };
  return { texts: found.map((e) => e.description) };
}

/**
 * Writes `features.html` in `outDir`: a card for each feature of {@linkcode chooseCards}. Refuses in
 * one line when the run's prompts, models or SAE are not the collected ones any more.
 */
export async function writeDashboards(options: DashboardOptions): Promise<{ path: string; cards: number }> {
  const { files, outDir, log } = options;
  const meta = files.chat.metadata;
  const [baseExamples, chatExamples] = [files.base.examples, files.chat.examples];
  if (!baseExamples || !chatExamples) throw new UserError(`the statistics in ${outDir} hold no top examples`);
  const examples: Record<DiffModel, TopExamples> = { base: baseExamples, chat: chatExamples };
  const tokenTypes = meta.token_types;
  const layer = meta.sae_layer;
  const dtype = meta.dtype;
  const batchSize = meta.batch_size;
  const prompts = await readRunPrompts(
    outDir,
    meta.prompts_digest,
    "the dashboards need them (collect again, or pass --cards 0)",
  );
  const dirs = {} as Record<DiffModel, string>;
  for (const model of DIFF_MODELS) {
    const source = files[model].metadata.model;
    dirs[model] = await resolveModelDir(source, { dtype });
    checkIdentity(
      `the ${model} model ${source}`,
      (await modelIdentity(dirs[model])).content,
      files[model].metadata.model_identity,
    );
  }
  const sae = await loadSae(meta.sae, { dModel: (await readModelShape(dirs.chat)).dModel });
  checkIdentity(`the SAE ${meta.sae}`, await saeIdentity(sae), meta.sae_identity);

  const choices = chooseCards(options.tables, options.cards);
  const lists = choices.map((card): Record<DiffModel, TopExample[]> => {
    const t = tokenTypes.indexOf(card.token as TokenType);
    return { base: examples.base.list(t, card.feature), chat: examples.chat.list(t, card.feature) };
  });
  // Every prompt on a card, tokenized as the run did (the chat model's template, the run's max length).
  const shown = [...new Set(lists.flatMap((l) => DIFF_MODELS.flatMap((m) => l[m].map((e) => e.prompt))))].sort((a, b) =>
    a - b
  );
  const tokenizer = await loadTokenizer(dirs.chat);
  const prepared = preparePrompts(tokenizer, shown.map((p) => prompts[p]), {
    maxLength: meta.max_length,
    types: tokenTypes,
  });
  const index = new Map(shown.map((p, i) => [p, i]));
  // Per model, shown prompt → feature → activation at every token.
  const activations = {} as Record<DiffModel, Map<number, Map<number, number[]>>>;
  for (const model of DIFF_MODELS) {
    // Each model runs only the prompts of its own lists, for the features whose lists hold them.
    const wanted = new Map<number, number[]>();
    choices.forEach((card, c) => {
      for (const e of lists[c][model]) wanted.set(e.prompt, [...wanted.get(e.prompt) ?? [], card.feature]);
    });
    const own = [...wanted.keys()].sort((a, b) => a - b);
    const requests = own.map((p) => ({ prompt: prepared[index.get(p)!], features: wanted.get(p)! }));
    const run = { layer, batchSize, dtype, device: options.device, sae, log };
    const values = await tokenActivations(files[model].metadata.model, requests, run);
    activations[model] = new Map(own.map((p, i) => [p, values[i]]));
  }

  const id = meta.neuronpedia_id ?? undefined;
  const source = id ? new ExplanationSource(id, options.explanations) : undefined;
  const explanations = new Map<number, Explanation[] | undefined>();
  for (const feature of new Set(choices.map((c) => c.feature))) explanations.set(feature, await source?.get(feature));
  const note = source?.unavailable
    ? `Neuronpedia explanations unavailable (${source.unavailable}): cards without a cached one say "no explanation cached".`
    : undefined;
  if (note) log?.(note);

  const metrics = { base: files.base.stats.finalize(), chat: files.chat.stats.finalize() };
  const cards: FeatureCard[] = choices.map((card, c) => {
    const t = tokenTypes.indexOf(card.token as TokenType);
    const examplesOf = (model: DiffModel): CardExample[] =>
      lists[c][model].map((e) => ({
        prompt: e.prompt,
        value: e.value,
        position: prepared[index.get(e.prompt)!].positions[t],
        activations: activations[model].get(e.prompt)?.get(card.feature),
      }));
    return {
      feature: card.feature,
      token: card.token,
      ranks: card.ranks,
      link: neuronpediaLink(id, card.feature),
      explanation: explanationOf(explanations.get(card.feature), id !== undefined),
      stats: METRICS.map((metric) => ({
        metric,
        base: metrics.base[card.token][metric][card.feature],
        chat: metrics.chat[card.token][metric][card.feature],
      })),
      examples: { base: examplesOf("base"), chat: examplesOf("chat") },
    };
  });
  const decode = (ids: number[]) => tokenizer.tokenizer.decode(ids, { skip_special_tokens: false });
  const data: DashboardData = {
    title: options.title,
    k: examples.chat.k,
    tokens: Object.fromEntries(shown.map((p, i) => [p, prepared[i].ids.map((token) => decode([token]))])),
    cards,
    note,
  };
  const out = dirOutput(outDir);
  await writeDashboardPage(out, "features.html", data);
  return { path: out.label("features.html"), cards: cards.length };
}
