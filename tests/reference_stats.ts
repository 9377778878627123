/**
 * Feature statistics computed the textbook way, in f64, from the reference forward pass and the
 * reference SAE encoder: the independent result the diff pipeline is compared against.
 */

import { readPositions, type TokenType, type TurnHeader } from "../lib/runtime/chat.ts";
import type { ModelHandle } from "../lib/runtime/runtime.ts";
import type { DecoderConfig } from "../lib/fixtures/spec.ts";
import { referenceForward } from "../lib/fixtures/reference.ts";
import { referenceEncode, type ReferenceSae } from "../lib/fixtures/sae_reference.ts";
import type { Weights } from "../lib/fixtures/weights.ts";
import { type FeatureMetrics, METRICS } from "../lib/features/stats.ts";
import type { TopExample, TopExamples } from "../lib/features/top_examples.ts";
import { assertBytesEqual, assertClose, assertEquals, type Tolerance } from "./assert.ts";

/** Per-feature statistics of one token type over all prompts (the same record the pipeline finalises). */
export type ReferenceFeatureStats = FeatureMetrics;

/** The residual stream after `layer` at every token of each sequence, by the f64 reference forward. */
export function referenceResiduals(
  config: DecoderConfig,
  weights: Weights,
  sequences: number[][],
  layer: number,
): Float64Array[][] {
  return sequences.map((ids) => referenceForward(config, weights, ids, { layers: layer + 1 }).residuals[layer + 1]);
}

/**
 * The assistant header as the seed notebook writes it out per family, independent of the header the
 * toolkit derives from the chat template: the literal text, tokenized, with the notebook's offsets
 * (`asst` -2, `endheader` -1, `newline` 0 from the end of the header).
 */
export function notebookHeader(handle: Pick<ModelHandle, "tokenizer">, family: "llama" | "gemma2"): TurnHeader {
  const text = family === "llama" ? "<|start_header_id|>assistant<|end_header_id|>" : "<start_of_turn>model\n";
  return {
    ids: handle.tokenizer.encode(text, { add_special_tokens: false }),
    offsets: { asst: -2, endheader: -1, newline: 0 },
  };
}

/**
 * Feature activations [prompt][feature] at each token type, from the f64 references: `residuals` as
 * {@linkcode referenceResiduals} gives them for `sequences`.
 */
export function referenceActivations(
  residuals: Float64Array[][],
  sequences: number[][],
  sae: ReferenceSae,
  header: TurnHeader,
  types: readonly TokenType[],
): Map<TokenType, Float64Array[]> {
  const out = new Map<TokenType, Float64Array[]>(types.map((t) => [t, []]));
  sequences.forEach((ids, i) => {
    const { positions } = readPositions(ids, header, types);
    types.forEach((type, k) => out.get(type)!.push(referenceEncode(sae, residuals[i][positions[k]])));
  });
  return out;
}

/** The statistics of `activations` ([prompt][feature]), by their definitions. */
export function referenceStats(activations: Float64Array[]): ReferenceFeatureStats {
  const n = activations.length;
  const d = activations[0].length;
  const stats: ReferenceFeatureStats = {
    all_mean: new Float64Array(d),
    all_std: new Float64Array(d),
    max: new Float64Array(d),
    num_active: new Float64Array(d),
    sparsity: new Float64Array(d),
    active_mean: new Float64Array(d),
    active_std: new Float64Array(d),
    active_min: new Float64Array(d),
  };
  for (let j = 0; j < d; j++) {
    const values = activations.map((a) => a[j]);
    const active = values.filter((v) => v > 0);
    const mean = values.reduce((s, v) => s + v, 0) / n;
    stats.all_mean[j] = mean;
    stats.all_std[j] = Math.sqrt(values.reduce((s, v) => s + (v - mean) ** 2, 0) / (n - 1));
    stats.max[j] = Math.max(...values);
    stats.num_active[j] = active.length;
    stats.sparsity[j] = active.length / n;
    const activeMean = active.length ? active.reduce((s, v) => s + v, 0) / active.length : 0;
    stats.active_mean[j] = activeMean;
    stats.active_std[j] = active.length > 1
      ? Math.sqrt(active.reduce((s, v) => s + (v - activeMean) ** 2, 0) / (active.length - 1))
      : 0;
    stats.active_min[j] = active.length ? Math.min(...active) : 0;
  }
  return stats;
}

/**
 * Asserts two sets of finalised metrics are identical bit for bit, reporting the first differing byte
 * of the first differing metric (a structural diff of thousands of numbers helps no one).
 */
export function assertSameMetrics(
  actual: Record<string, FeatureMetrics>,
  expected: Record<string, FeatureMetrics>,
  what: string,
): void {
  assertEquals(Object.keys(actual), Object.keys(expected), `${what}: token types`);
  for (const type of Object.keys(expected)) {
    for (const name of METRICS) assertBytesEqual(actual[type][name], expected[type][name], `${what}: ${type} ${name}`);
  }
}

/**
 * Top examples by their definition: for each feature, every positive activation of `activations`
 * (one array per row, row i from prompt `prompts[i]`) sorted by value, largest first, ties to the
 * lower prompt. The whole list, not cut at k, so a comparison can see the first example left out.
 */
export function referenceTopExamples(activations: ArrayLike<number>[], prompts: readonly number[]): TopExample[][] {
  const d = activations[0]?.length ?? 0;
  return Array.from({ length: d }, (_, j) =>
    activations
      .map((a, i) => ({ value: a[j], prompt: prompts[i] }))
      .filter((e) => e.value > 0)
      .sort((x, y) => y.value - x.value || x.prompt - y.prompt));
}

/**
 * Asserts `actual` (a list of k or fewer examples computed in f32) is the top k of `expected` (a full
 * {@linkcode referenceTopExamples} list in f64): as many entries, each value within `tolerance` of
 * the reference's value at the same rank, and the same prompt wherever the reference's value at that
 * rank is separated from its neighbours (including the first one left out) by more than the
 * tolerances of both, so f32 rounding cannot have swapped them. Returns how many prompts it compared.
 */
export function assertTopExamplesClose(
  actual: TopExample[],
  expected: TopExample[],
  k: number,
  tolerance: Tolerance,
): number {
  const label = tolerance.label ?? "top examples";
  const top = expected.slice(0, k);
  assertEquals(actual.length, top.length, `${label}: list length`);
  assertClose(actual.map((e) => e.value), top.map((e) => e.value), { ...tolerance, label: `${label}: values` });
  const allowance = (v: number) => tolerance.atol + tolerance.rtol * Math.abs(v);
  const apart = (i: number, n: number) =>
    n < 0 || n >= expected.length || Math.abs(expected[i].value - expected[n].value) >
      allowance(expected[i].value) + allowance(expected[n].value);
  let compared = 0;
  top.forEach((e, i) => {
    if (!apart(i, i - 1) || !apart(i, i + 1)) return;
    compared++;
    assertEquals(actual[i].prompt, e.prompt, `${label}: prompt at rank ${i + 1} (value ${e.value})`);
  });
  return compared;
}

/** Asserts two sets of top examples are identical: shape, every value (bit for bit) and every prompt. */
export function assertSameTopExamples(actual: TopExamples, expected: TopExamples, what: string): void {
  assertEquals([actual.tokenTypes, actual.dSae, actual.k], [expected.tokenTypes, expected.dSae, expected.k], what);
  assertBytesEqual(actual.values, expected.values, `${what}: values`);
  assertBytesEqual(actual.prompts, expected.prompts, `${what}: prompts`);
}
