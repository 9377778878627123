/**
 * Neuronpedia for the SAEs it hosts: ids, feature page links and the shape of its API's explanations
 * (asking it, with a disk cache, is ./neuronpedia_api.ts).
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

/** One explanation of a feature, as Neuronpedia's feature API gives it. */
export interface Explanation {
  description: string;
  /** The model that wrote it (e.g. "gpt-4o-mini"), when Neuronpedia says. */
  explanationModelName?: string;
  /** How it was made (e.g. "oai_token-act-pair"), when Neuronpedia says. */
  typeName?: string;
}

/**
 * The explanations in an answer of `GET /api/feature/{modelId}/{layer}/{index}`, best first. That
 * route (hijohnnylin/neuronpedia, apps/webapp/app/api/feature/[modelId]/[layer]/[index]/route.ts)
 * returns the neuron of `getNeuronOptimized` (apps/webapp/lib/db/neuron.ts): the Neuron row with
 * `explanations`, each `{ id, description, explanationModelName, typeName, scores, triggeredByUser }`
 * ordered by scoreV2 then scoreV1 descending, beside `activations` and the feature's other fields.
 * Entries without a text description are skipped; an answer without the array has none.
 */
export function parseExplanations(answer: unknown): Explanation[] {
  const list = (answer as { explanations?: unknown } | null)?.explanations;
  if (!Array.isArray(list)) return [];
  const text = (value: unknown) => (typeof value === "string" && value.trim() ? value : undefined);
  return list.flatMap((entry) => {
    const e = (entry ?? {}) as Record<string, unknown>;
    const description = text(e.description);
    if (!description) return [];
    const out: Explanation = { description: description.trim() };
    if (text(e.explanationModelName)) out.explanationModelName = e.explanationModelName as string;
    if (text(e.typeName)) out.typeName = e.typeName as string;
    return [out];
  });
}
