/**
 * The one in-memory SAE shape every format loads into: SAELens's orientation (W_enc [d_in, d_sae],
 * W_dec [d_sae, d_in]) with any input normalisation, and SAELens's TopK `rescale_acts_by_decoder_norm`,
 * already folded into the weights.
 *
 * @module
 */

/** Architectures (activation functions) the encoder supports. */
export type SaeArchitecture = "relu" | "jumprelu" | "topk" | "gated";

/** File formats the loader reads. */
export type SaeFormat = "saelens" | "llamascope" | "gemmascope" | "gemmascope2";

/** What an SAE is, apart from its weights. */
export interface SaeConfig {
  format: SaeFormat;
  architecture: SaeArchitecture;
  dIn: number;
  dSae: number;
  /** Top-k's k. */
  k?: number;
  /** Subtract b_dec from the input before encoding (SAELens `apply_b_dec_to_input`). */
  applyBDecToInput: boolean;
  /** The layer the SAE was trained on, when its files say. */
  hookLayer?: number;
  modelName?: string;
  neuronpediaId?: string;
  /** Where it was loaded from. */
  source: string;
}

/** An SAE ready to encode. */
export interface Sae {
  config: SaeConfig;
  /** [dIn, dSae] row-major. */
  wEnc: Float32Array;
  bEnc: Float32Array;
  /** [dSae, dIn] row-major. */
  wDec: Float32Array;
  bDec: Float32Array;
  /** Per-feature JumpReLU threshold (zeros otherwise). */
  threshold: Float32Array;
  /**
   * Gated SAEs only: the magnitude path. With pre = x W_enc (after b_dec where the format subtracts it),
   * f = [pre + b_enc > 0] · relu(pre · scale + bias), where b_enc is SAELens's `b_gate`, scale its
   * exp(`r_mag`) and bias its `b_mag` (all [dSae]).
   */
  magnitude?: { scale: Float32Array; bias: Float32Array };
}

/** The layer in a hook name such as `blocks.15.hook_resid_post`. */
export function layerOfHook(hook: unknown): number | undefined {
  const match = typeof hook === "string" ? /blocks\.(\d+)\./.exec(hook) : null;
  return match ? Number(match[1]) : undefined;
}
