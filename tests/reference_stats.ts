/**
 * Feature statistics computed the textbook way, in f64, from the reference forward pass and the
 * reference SAE encoder: the independent result the diff pipeline is compared against.
 */

import { readPositions, type TokenType } from "../lib/chat.ts";
import type { DecoderConfig } from "../lib/fixtures/spec.ts";
import { referenceForward } from "../lib/fixtures/reference.ts";
import { referenceEncode, type ReferenceSae } from "../lib/fixtures/sae_reference.ts";
import type { Weights } from "../lib/fixtures/weights.ts";
import { type FeatureMetrics, METRICS } from "../lib/stats.ts";
import { assertBytesEqual, assertEquals } from "./assert.ts";

/** Per-feature statistics of one token type over all prompts (the same record the pipeline finalises). */
export type ReferenceFeatureStats = FeatureMetrics;

/** Feature activations [prompt][feature] at each token type, from the f64 references. */
export function referenceActivations(
  config: DecoderConfig,
  weights: Weights,
  sae: ReferenceSae,
  sequences: number[][],
  header: number[],
  layer: number,
  types: readonly TokenType[],
): Map<TokenType, Float64Array[]> {
  const out = new Map<TokenType, Float64Array[]>(types.map((t) => [t, []]));
  for (const ids of sequences) {
    const residual = referenceForward(config, weights, ids, { layers: layer + 1 }).residuals[layer + 1];
    const { positions } = readPositions(ids, header, types);
    types.forEach((type, k) => out.get(type)!.push(referenceEncode(sae, residual[positions[k]])));
  }
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
