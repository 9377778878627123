/**
 * The data of a diff's feature dashboards (`features.html`), wherever the run's models are: for the top
 * features of each table, both models' top examples as collected, with the feature's activation at
 * every token of those prompts (each model run over just those prompts, all positions, and encoded by
 * the run's SAE), its statistics, and its Neuronpedia link and explanation. The CLI (lib/run/dashboards.ts)
 * and the page load models and SAE their own way and hand them in.
 *
 * @module
 */

import { collectResiduals } from "../runtime/activations.ts";
import { type PreparedPrompt, preparePrompts, type TokenType } from "../runtime/chat.ts";
import type { ModelHandle } from "../runtime/runtime.ts";
import { DIFF_MODELS, type DiffModel } from "../analysis/stats_file.ts";
import { DIFF_METRICS, type DiffMetric, type DiffRow } from "../features/diff.ts";
import { UserError } from "../core/errors.ts";
import { type Explanation, neuronpediaLink } from "../features/neuronpedia.ts";
import { METRICS } from "../features/stats.ts";
import type { TopExample, TopExamples } from "../features/top_examples.ts";
import type { Sae } from "../sae/config.ts";
import type { FeatureEncoder } from "../sae/feature_encoder.ts";
import type { CardExample, DashboardData, FeatureCard } from "./dashboards.ts";
import type { RunStats } from "./diff.ts";

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

/** One prompt to run again, and the features whose activations at its every token a card shows. */
export interface ActivationRequest {
  prompt: PreparedPrompt;
  features: number[];
}

/**
 * The activations of each request's features at every token of its prompt (one map per request,
 * feature → values): batches of `batchSize` prompts through `handle` (the model capturing `layer`),
 * encoded in row chunks by `encoder`, an encoder of {@linkcode featureSubset}'s SAE (`column` maps a
 * feature to its column there).
 */
export async function tokenActivations(
  handle: ModelHandle,
  encoder: FeatureEncoder,
  column: ReadonlyMap<number, number>,
  requests: readonly ActivationRequest[],
  run: { layer: number; batchSize: number },
): Promise<Map<number, number[]>[]> {
  const { dIn, dSae } = encoder.sae.config;
  const chunk = encodeRows(dSae);
  const out: Map<number, number[]>[] = [];
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
  return out;
}

/** A card's explanation as the page shows it. */
function explanationOf(found: Explanation[] | undefined, hasId: boolean): FeatureCard["explanation"] {
  if (!hasId) return { texts: [], note: "no Neuronpedia id for this SAE" };
  if (!found) return { texts: [], note: "no explanation cached" };
  if (!found.length) return { texts: [], note: "Neuronpedia has no explanation of this feature" };
  return { texts: found.map((e) => e.description) };
}

/** Options of {@linkcode dashboardData}. */
export interface DashboardDataOptions {
  title: string;
  tables: Record<DiffMetric, DiffRow[]>;
  /** Both models' statistics, with their top examples. */
  stats: Record<DiffModel, RunStats>;
  /** The run's prompts (the top examples name them by index). */
  prompts: readonly string[];
  /** The chat model's tokenizer: prompts are tokenized as the run did. */
  tokenizer: Pick<ModelHandle, "tokenizer" | "config" | "source">;
  /** Cards for the first this many rows per read position of each table. */
  cards: number;
  /** `model`'s activations for `requests` ({@linkcode tokenActivations} on that model). */
  activations(model: DiffModel, requests: ActivationRequest[]): Promise<Map<number, number[]>[]>;
  /** Explanations of `features` where there are some, and a note when they could not be had. */
  explain?(features: number[]): Promise<{ found: Map<number, Explanation[] | undefined>; note?: string }>;
}

/** The dashboards' data: a card for each feature of {@linkcode chooseCards}. */
export async function dashboardData(options: DashboardDataOptions): Promise<DashboardData> {
  const { stats } = options;
  const meta = stats.chat.metadata;
  const [baseExamples, chatExamples] = [stats.base.examples, stats.chat.examples];
  if (!baseExamples || !chatExamples) throw new UserError(`the statistics hold no top examples`);
  const examples: Record<DiffModel, TopExamples> = { base: baseExamples, chat: chatExamples };
  const tokenTypes = meta.token_types;
  const choices = chooseCards(options.tables, options.cards);
  const lists = choices.map((card): Record<DiffModel, TopExample[]> => {
    const t = tokenTypes.indexOf(card.token as TokenType);
    return { base: examples.base.list(t, card.feature), chat: examples.chat.list(t, card.feature) };
  });
  // Every prompt on a card, tokenized as the run did (the chat model's template, the run's max length).
  const shown = [...new Set(lists.flatMap((l) => DIFF_MODELS.flatMap((m) => l[m].map((e) => e.prompt))))].sort((a, b) =>
    a - b
  );
  const prepared = preparePrompts(options.tokenizer, shown.map((p) => options.prompts[p]), {
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
    const values = requests.length ? await options.activations(model, requests) : [];
    activations[model] = new Map(own.map((p, i) => [p, values[i]]));
  }

  const id = meta.neuronpedia_id ?? undefined;
  const explained = id && options.explain
    ? await options.explain([...new Set(choices.map((c) => c.feature))])
    : { found: new Map<number, Explanation[] | undefined>() };
  const metrics = { base: stats.base.stats.finalize(), chat: stats.chat.stats.finalize() };
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
      explanation: explanationOf(explained.found.get(card.feature), id !== undefined),
      stats: METRICS.map((metric) => ({
        metric,
        base: metrics.base[card.token][metric][card.feature],
        chat: metrics.chat[card.token][metric][card.feature],
      })),
      examples: { base: examplesOf("base"), chat: examplesOf("chat") },
    };
  });
  const decode = (ids: number[]) => options.tokenizer.tokenizer.decode(ids, { skip_special_tokens: false });
  return {
    title: options.title,
    k: examples.chat.k,
    tokens: Object.fromEntries(shown.map((p, i) => [p, prepared[i].ids.map((token) => decode([token]))])),
    cards,
    note: explained.note,
  };
}
