/**
 * Random SAEs for encoder tests, and their f64 reference (lib/fixtures/sae_reference.ts) view.
 */

import { assert, assertClose, assertEquals } from "./assert.ts";
import {
  assertSameMetrics,
  assertSameTopExamples,
  assertTopExamplesClose,
  referenceStats,
  referenceTopExamples,
} from "./reference_stats.ts";
import { SeededRandom } from "../lib/core/random.ts";
import { referenceEncode, type ReferenceSae } from "../lib/fixtures/sae_reference.ts";
import type { Sae, SaeArchitecture } from "../lib/sae/config.ts";
import type { FeatureEncoder } from "../lib/sae/feature_encoder.ts";
import { FeatureStats, METRICS } from "../lib/features/stats.ts";
import { TopExamples } from "../lib/features/top_examples.ts";

/**
 * A random SAE of odd sizes (not multiples of any tile). Feature 0 always fires, 1 never. A gated one's
 * gate bias is b_enc, its magnitude path exp(r_mag) with r_mag ~ N(0, 0.5²) and b_mag ~ N(0, 0.5²).
 */
export function randomSae(
  dIn: number,
  dSae: number,
  architecture: SaeArchitecture,
  seed: number,
  applyBDec = false,
): Sae {
  const r = new SeededRandom(seed);
  const bEnc = r.normals(dSae, 0.5);
  bEnc[0] = 1e3;
  bEnc[1] = -1e3;
  const sae: Sae = {
    config: { format: "saelens", architecture, dIn, dSae, k: 7, applyBDecToInput: applyBDec, source: "random" },
    wEnc: r.normals(dIn * dSae, 1 / Math.sqrt(dIn)),
    bEnc,
    wDec: r.normals(dSae * dIn),
    bDec: r.normals(dIn, 0.3),
    threshold: architecture === "jumprelu"
      ? Float32Array.from({ length: dSae }, () => r.uniform())
      : new Float32Array(dSae),
  };
  if (architecture === "gated") {
    const bias = r.normals(dSae, 0.5);
    bias[0] = 1e3;
    sae.magnitude = { scale: r.normals(dSae, 0.5).map(Math.exp), bias };
  }
  return sae;
}

/** The f64 reference SAE with `sae`'s weights and definition. */
export function asReference(sae: Sae): ReferenceSae {
  return {
    ...sae,
    dIn: sae.config.dIn,
    dSae: sae.config.dSae,
    activation: sae.config.architecture,
    k: sae.config.k,
    gated: sae.magnitude && { bGate: sae.bEnc, rMag: sae.magnitude.scale.map(Math.log), bMag: sae.magnitude.bias },
    applyBDecToInput: sae.config.applyBDecToInput,
    inputScale: 1,
  };
}

/** Statistics of f32 activations against f64 ones, per element. Observed worst: 1.8e-6 relative (all_std). */
const STATS_TOLERANCE = { rtol: 1e-5, atol: 1e-6 };

/** f32 activations against f64 ones in top-example lists, per element. */
const TOP_TOLERANCE = { rtol: 1e-4, atol: 1e-5 };

/**
 * Checks an encoder's statistics and top examples (k = 4): six random batches of a 33 x 130 JumpReLU
 * SAE, collected in one go and as two shards (2 + 4 batches) that must merge into exactly the one-shot
 * result, which must match textbook statistics and a plain sort of the f64 reference encoding of the
 * same rows. Prompts are numbered backwards, so the lists cannot follow arrival order.
 */
export async function checkEncoderStatistics(create: (sae: Sae) => Promise<FeatureEncoder>): Promise<void> {
  const [dIn, dSae, batches, perBatch] = [33, 130, 6, 9];
  const sae = randomSae(dIn, dSae, "jumprelu", 3);
  const encoder = await create(sae);
  const types = ["asst", "endheader", "newline"];
  const random = new SeededRandom(9);
  const data = Array.from({ length: batches }, () => random.normals(perBatch * dIn, 2));
  const rowType = Uint32Array.from({ length: perBatch }, (_, r) => r % 3);
  const promptOf = (i: number, r: number) => batches * perBatch / 3 - 1 - (i * perBatch + r - r % 3) / 3;
  const k = 4;
  const record = () => ({ stats: FeatureStats.empty(types, dSae), examples: TopExamples.empty(types, dSae, k) });
  const [oneShot, shardA, shardB] = [record(), record(), record()];
  for (let i = 0; i < batches; i++) {
    const promptOfRow = Uint32Array.from({ length: perBatch }, (_, r) => promptOf(i, r));
    await encoder.encodeInto(data[i], perBatch, rowType, oneShot.stats, { examples: oneShot.examples, promptOfRow });
    const shard = i < 2 ? shardA : shardB;
    await encoder.encodeInto(data[i], perBatch, rowType, shard.stats, { examples: shard.examples, promptOfRow });
  }
  // Top examples reach their lists at the latest at flush (statistics at each encodeInto).
  await encoder.flush();
  const merged = shardA.stats.clone();
  merged.merge(shardB.stats);
  const metrics = oneShot.stats.finalize();
  assertSameMetrics(merged.finalize(), metrics, "merged shards vs one shot");
  const mergedExamples = shardA.examples.clone();
  mergedExamples.merge(shardB.examples);
  assertSameTopExamples(mergedExamples, oneShot.examples, "merged shards' top examples vs one shot");
  let comparedPrompts = 0;
  types.forEach((type, t) => {
    const activations: Float64Array[] = [];
    const prompts: number[] = [];
    data.forEach((batch, i) => {
      for (let r = t; r < perBatch; r += 3) {
        activations.push(referenceEncode(asReference(sae), batch.subarray(r * dIn, (r + 1) * dIn)));
        prompts.push(promptOf(i, r));
      }
    });
    const top = referenceTopExamples(activations, prompts);
    for (let j = 0; j < dSae; j++) {
      comparedPrompts += assertTopExamplesClose(oneShot.examples.list(t, j), top[j], k, {
        ...TOP_TOLERANCE,
        label: `${type} feature ${j}`,
      });
    }
    const reference = referenceStats(activations);
    for (const name of METRICS) {
      assertClose(metrics[type][name], reference[name], { ...STATS_TOLERANCE, label: `${type} ${name}` });
    }
    assertEquals([reference.sparsity[0], reference.sparsity[1]], [1, 0]);
    assertEquals([metrics[type].sparsity[0], metrics[type].sparsity[1], metrics[type].active_mean[1]], [1, 0, 0]);
    assertEquals(oneShot.examples.list(t, 1), [], "the silent feature has no examples");
  });
  assert(comparedPrompts > types.length * dSae, `prompts compared: ${comparedPrompts}`);
  encoder.destroy();
}

/**
 * A gated SAE on which f32 arithmetic is exact whatever the summation order (small integer weights,
 * inputs in quarters), with its expected activations: x W + b_gate is exactly 0 for even features (the
 * gate stays shut) and 0.25 for odd ones (open); the magnitude is 2 · x W + b_mag with b_mag = 100, or
 * −100 for features 3 and 7 (open, but ReLU'd to 0).
 */
export function exactGatedSae(): { sae: Sae; x: Float32Array; expected: number[] } {
  const [dIn, dSae] = [4, 8];
  const r = new SeededRandom(23);
  const wEnc = Float32Array.from({ length: dIn * dSae }, () => Math.round(6 * r.uniform()) - 3);
  const x = Float32Array.from({ length: dIn }, () => Math.round(8 * r.uniform()) / 4);
  const xw = Array.from({ length: dSae }, (_, j) => x.reduce((sum, xi, i) => sum + xi * wEnc[i * dSae + j], 0));
  const bias = Float32Array.from({ length: dSae }, (_, j) => (j % 4 === 3 ? -100 : 100));
  const sae: Sae = {
    config: { format: "saelens", architecture: "gated", dIn, dSae, applyBDecToInput: false, source: "exact" },
    wEnc,
    bEnc: Float32Array.from(xw, (v, j) => -v + (j % 2 ? 0.25 : 0)),
    wDec: new Float32Array(dSae * dIn),
    bDec: new Float32Array(dIn),
    threshold: new Float32Array(dSae),
    magnitude: { scale: new Float32Array(dSae).fill(2), bias },
  };
  const expected = xw.map((v, j) => (j % 2 ? Math.max(0, 2 * v + bias[j]) : 0));
  return { sae, x, expected };
}
