/**
 * Neuronpedia feature pages for the SAEs it hosts.
 *
 * @module
 */

/** Base URL of a feature page: `https://www.neuronpedia.org/{model}/{sae}/{feature}`. */
export const NEURONPEDIA = "https://www.neuronpedia.org";

/**
 * The Neuronpedia id (`{model}/{sae}`) of an SAE: given explicitly (SAELens cfg `neuronpedia_id`),
 * or known for the notebook presets: Llama Scope residual 32x (131k) on Llama 3.1 8B and Gemma Scope
 * residual 131k on Gemma 2 9B.
 */
export function neuronpediaId(options: {
  explicit?: string | null;
  format?: string;
  modelName?: string;
  layer: number;
  dSae: number;
}): string | undefined {
  if (options.explicit) return options.explicit;
  const model = (options.modelName ?? "").toLowerCase();
  if (options.format === "llamascope" && options.dSae === 131072 && model.includes("llama-3.1-8b")) {
    return `llama3.1-8b/${options.layer}-llamascope-res-131k`;
  }
  if (options.format === "gemmascope" && options.dSae === 131072 && model.includes("gemma-2-9b")) {
    return `gemma-2-9b/${options.layer}-gemmascope-res-131k`;
  }
  return undefined;
}

/** The page of `feature`, or "" without an id. */
export function neuronpediaLink(id: string | undefined, feature: number): string {
  return id ? `${NEURONPEDIA}/${id}/${feature}` : "";
}
