/**
 * The notebooks' configurations as presets for `deno task diff --preset`. The hub repositories hold
 * Hugging Face checkpoints (safetensors), from which the toolkit builds the graphs itself; both are
 * gated, so `HF_TOKEN` must name an account that accepted their licences.
 *
 * @module
 */

/**
 * A diff configuration. `sae` is a SAELens release id (lib/sae/releases.ts), so it names the folder
 * SAELens would download (`google/gemma-scope-9b-pt-res/layer_20/width_131k/average_l0_114` for the
 * Gemma one, whose canonical name is not a folder on the hub).
 */
export interface DiffPreset {
  base: string;
  chat: string;
  sae: string;
  layer: number;
  neuronpediaId: string;
}

/** Llama 3.1 8B base vs Instruct, layer 15, Llama Scope residual 32x; Gemma 2 9B vs IT, layer 20, Gemma Scope 131k. */
export const DIFF_PRESETS: Record<string, DiffPreset> = {
  "llama31-8b": {
    base: "meta-llama/Llama-3.1-8B",
    chat: "meta-llama/Llama-3.1-8B-Instruct",
    sae: "llama_scope_lxr_32x/l15r_32x",
    layer: 15,
    neuronpediaId: "llama3.1-8b/15-llamascope-res-131k",
  },
  "gemma2-9b": {
    base: "google/gemma-2-9b",
    chat: "google/gemma-2-9b-it",
    sae: "gemma-scope-9b-pt-res-canonical/layer_20/width_131k/canonical",
    layer: 20,
    neuronpediaId: "gemma-2-9b/20-gemmascope-res-131k",
  },
};
