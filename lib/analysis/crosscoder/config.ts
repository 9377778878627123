/**
 * The one in-memory crosscoder shape every layout loads into: two "models" (index 0 = base, 1 =
 * chat, as dictionary_learning's `CrossCoder` orders its layers and the TransformerLens replication
 * its `n_models`), one shared latent code, a decoder per model. Orientation is dictionary_learning's
 * (`dictionary_learning/dictionary.py`, `CrossCoderEncoder`/`CrossCoderDecoder`): W_enc
 * [2, d, dict], W_dec [2, dict, d], b_dec [2, d]; any input scaling is already folded into W_enc.
 *
 * Encoding is f = act(x_base · W_enc[0] + x_chat · W_enc[1] + b_enc), i.e. an SAE encode of the
 * concatenation [x_base, x_chat] with W_enc read as [2d, dict] (the same bytes).
 *
 * @module
 */

/** The file layouts the loader reads. */
export type CrosscoderLayout = "dictionary_learning" | "transformerlens";

/** Activation rules: ReLU (`CrossCoder`, the TransformerLens replication) or `BatchTopKCrossCoder`'s. */
export type CrosscoderArchitecture = "relu" | "batchtopk";

/**
 * dictionary_learning's `CodeNormalization` (how a latent's activation is weighted by its decoder
 * norms for the sparsity rule): CROSSCODER = Σ_m ‖W_dec[m, j]‖, SAE = ‖concat_m W_dec[m, j]‖, MIXED =
 * α_sae · SAE + α_cc · CROSSCODER, NONE = 1. (DECOUPLED gives one code per model and is refused.)
 */
export type CodeNormalization = "crosscoder" | "sae" | "mixed" | "none";

/** What a crosscoder is, apart from its weights. */
export interface CrosscoderConfig {
  layout: CrosscoderLayout;
  architecture: CrosscoderArchitecture;
  /** Width of each model's residual stream. */
  dModel: number;
  /** Number of latents. */
  dict: number;
  /** BatchTopK's k (kept for the record: inference uses the threshold, as dictionary_learning's `encode`). */
  k?: number;
  /** BatchTopK's learned threshold on relu(pre) · code normalization; negative = never calibrated. */
  threshold?: number;
  codeNormalization: CodeNormalization;
  /** MIXED's weights (dictionary_learning defaults 1.0 and 0.1). */
  alphaSae: number;
  alphaCc: number;
  /** The residual layer (output of decoder layer L) it was trained on, when its files say. */
  hookLayer?: number;
  /** Where it was loaded from. */
  source: string;
}

/** A crosscoder ready to encode. */
export interface Crosscoder {
  config: CrosscoderConfig;
  /** [2, dModel, dict] row-major (= [2·dModel, dict]: the encoder of the concatenation). */
  wEnc: Float32Array;
  /** [dict] */
  bEnc: Float32Array;
  /** [2, dict, dModel] row-major. */
  wDec: Float32Array;
  /** [2, dModel] */
  bDec: Float32Array;
}

/** Index of each model in a crosscoder's model axis. */
export const MODEL_INDEX = { base: 0, chat: 1 } as const;

/** ‖W_dec[m, j]‖ per model m and latent j, in f64: [2][dict]. */
export function decoderNorms(cc: Crosscoder): [Float64Array, Float64Array] {
  const { dModel, dict } = cc.config;
  const norms = [new Float64Array(dict), new Float64Array(dict)] as [Float64Array, Float64Array];
  for (let m = 0; m < 2; m++) {
    for (let j = 0; j < dict; j++) {
      const row = (m * dict + j) * dModel;
      let sum = 0;
      for (let i = 0; i < dModel; i++) sum += cc.wDec[row + i] ** 2;
      norms[m][j] = Math.sqrt(sum);
    }
  }
  return norms;
}

/** Each latent's code normalization c_j (dictionary_learning `get_code_normalization`), f64. */
export function codeNormalization(cc: Crosscoder): Float64Array {
  const [base, chat] = decoderNorms(cc);
  const { codeNormalization: kind, alphaSae, alphaCc } = cc.config;
  return base.map((b, j) => {
    const c = chat[j];
    const sae = Math.hypot(b, c);
    if (kind === "crosscoder") return b + c;
    if (kind === "sae") return sae;
    if (kind === "mixed") return alphaSae * sae + alphaCc * (b + c);
    return 1;
  });
}
