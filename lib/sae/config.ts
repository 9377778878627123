/**
 * The one in-memory SAE shape every format loads into: SAELens's orientation (W_enc [d_in, d_sae],
 * W_dec [d_sae, d_in]) with any input normalisation already folded into the weights.
 *
 * @module
 */

/** Architectures (activation functions) the encoder supports. */
export type SaeArchitecture = "relu" | "jumprelu" | "topk";

/** File formats the loader reads. */
export type SaeFormat = "saelens" | "llamascope" | "gemmascope";

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
}

/** The layer in a hook name such as `blocks.15.hook_resid_post`. */
export function layerOfHook(hook: unknown): number | undefined {
  const match = typeof hook === "string" ? /blocks\.(\d+)\./.exec(hook) : null;
  return match ? Number(match[1]) : undefined;
}
