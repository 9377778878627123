/**
 * Per-latent decoder statistics of a base-vs-chat crosscoder and the literature's tags.
 *
 * Norms are Euclidean norms ‖d_m,j‖ of each model's decoder vector (not squared), as both sources
 * compute them:
 * - relative norm r_j = ‖d_chat‖ / (‖d_base‖ + ‖d_chat‖): Lindsey et al. 2024, "Sparse Crosscoders for
 *   Cross-Layer Features and Model Diffing" (its relative-norm histogram), as the TransformerLens
 *   replication computes it (ckkissane/crosscoder-model-diff-replication `analysis.py`:
 *   `norms[:, 1] / norms.sum(dim=-1)`, with `W_dec.norm(dim=-1)`);
 * - relative norm difference Δnorm_j = ½((‖d_chat‖ − ‖d_base‖) / max(‖d_chat‖, ‖d_base‖) + 1): Minder et al.
 *   2025, "Overcoming Sparsity Artifacts in Crosscoders to Interpret Chat-Tuning" (arXiv 2504.02922),
 *   whose tags come from their diffing-toolkit (`src/diffing/utils/dictionary/analysis.py`,
 *   `build_push_crosscoder_latent_df`, threshold 0.1, strict): chat-only Δnorm > 0.9, base-only
 *   Δnorm < 0.1, shared |Δnorm − 0.5| < 0.1, other otherwise (that code writes the base-minus-chat
 *   orientation 1 − Δnorm and calls chat-only `ft_only`).
 * A latent whose two decoder vectors are zero has no ratio (NaN) and is `other`, as there.
 * The cosine is that of d_base and d_chat (0 when either is zero, as torch's `cosine_similarity`).
 *
 * @module
 */

import { type Crosscoder, decoderNorms } from "./config.ts";

/** The tags of {@linkcode latentTag}. */
export const LATENT_TAGS = ["chat_only", "base_only", "shared", "other"] as const;

/** A latent's tag. */
export type LatentTag = typeof LATENT_TAGS[number];

/** Minder et al.'s threshold on Δnorm (diffing-toolkit's `treshold = 0.1`). */
export const TAG_THRESHOLD = 0.1;

/** Decoder statistics of every latent. */
export interface LatentDecoderStats {
  normBase: Float64Array;
  normChat: Float64Array;
  /** ‖d_chat‖ / (‖d_base‖ + ‖d_chat‖) */
  relativeNorm: Float64Array;
  /** ½((‖d_chat‖ − ‖d_base‖) / max + 1) */
  normDiff: Float64Array;
  cosine: Float64Array;
  tags: LatentTag[];
}

/** Δnorm of one latent from its two decoder norms. */
export function relativeNormDifference(normBase: number, normChat: number): number {
  return ((normChat - normBase) / Math.max(normBase, normChat) + 1) / 2;
}

/** The tag of a latent with relative norm difference `normDiff`. */
export function latentTag(normDiff: number): LatentTag {
  if (normDiff > 1 - TAG_THRESHOLD) return "chat_only";
  if (normDiff < TAG_THRESHOLD) return "base_only";
  if (Math.abs(normDiff - 0.5) < TAG_THRESHOLD) return "shared";
  return "other";
}

/** Norms, ratios, cosines and tags of every latent of `cc`, in f64 over its f32 decoder. */
export function latentDecoderStats(cc: Crosscoder): LatentDecoderStats {
  const { dModel, dict } = cc.config;
  const [normBase, normChat] = decoderNorms(cc);
  const cosine = new Float64Array(dict);
  for (let j = 0; j < dict; j++) {
    const base = j * dModel;
    const chat = (dict + j) * dModel;
    let dot = 0;
    for (let i = 0; i < dModel; i++) dot += cc.wDec[base + i] * cc.wDec[chat + i];
    const denominator = normBase[j] * normChat[j];
    cosine[j] = denominator > 0 ? dot / denominator : 0;
  }
  const normDiff = normBase.map((b, j) => relativeNormDifference(b, normChat[j]));
  return {
    normBase,
    normChat,
    relativeNorm: normBase.map((b, j) => normChat[j] / (b + normChat[j])),
    normDiff,
    cosine,
    tags: Array.from(normDiff, latentTag),
  };
}

/** How many latents carry each tag. */
export function tagCounts(tags: readonly LatentTag[]): Record<LatentTag, number> {
  const counts = Object.fromEntries(LATENT_TAGS.map((t) => [t, 0])) as Record<LatentTag, number>;
  for (const tag of tags) counts[tag]++;
  return counts;
}
