/**
 * Finding the residual stream in a decoder's ONNX graph: the tensor after each decoder layer
 * (HF `hidden_states[L+1]`, "resid_post") and the embedding output (`hidden_states[0]`).
 *
 * Two export schemes are recognised:
 * - Optimum (torch.onnx): each layer's residual additions are the only `Add` nodes directly in
 *   scope `/model/layers.{i}`: `Add` after attention, `Add_1` after the MLP = resid_post.
 * - onnxruntime-genai's model builder: residual additions are fused into
 *   `SkipSimplifiedLayerNormalization` nodes; output 3 (input + skip) of layer i+1's
 *   `input_layernorm` (or of the final `/model/norm` for the last layer) is resid_post of layer i.
 * Anything else needs an explicit override: a pattern with `{layer}` or a list of tensor names.
 *
 * @module
 */

import { UserError } from "../errors.ts";
import type { onnx } from "./onnx.ts";

/** Where the residual stream is in one graph. */
export interface ResidualMap {
  scheme: "optimum" | "genai" | "override";
  /** hidden_states[0]: the input of the first decoder layer. */
  embeddings: string;
  /** resid_post[i]: the output of decoder layer i (= hidden_states[i + 1]). */
  layers: string[];
  /**
   * Genai graphs may not list output 3 of a SkipSimplifiedLayerNormalization; these nodes need it
   * added (by node name) before the tensor exists.
   */
  missingOutputs: { node: string; index: number; tensor: string }[];
}

/** An explicit residual location: a pattern such as `/model/layers.{layer}/Add_1_output_0`, or names. */
export type ResidualOverride = { pattern: string; layers: number } | { names: string[] };

const OPTIMUM_LAYER = /^\/model\/layers\.(\d+)\/Add(?:_(\d+))?$/;
const GENAI_SKIP = /^\/model\/(?:layers\.(\d+)\/input_layernorm|norm)\/.*$/;

/** Locates the residual stream of `graph`, or throws a {@linkcode UserError} listing what was found. */
export function locateResiduals(graph: onnx.IGraphProto, override?: ResidualOverride): ResidualMap {
  const nodes = graph.node ?? [];
  const tensors = new Set(nodes.flatMap((n) => n.output ?? []));
  if (override) return fromOverride(override, tensors, nodes);
  return optimumResiduals(nodes) ?? genaiResiduals(nodes) ?? notFound(nodes);
}

function optimumResiduals(nodes: onnx.INodeProto[]): ResidualMap | undefined {
  // Per layer, the Add nodes directly in the layer's scope, by their torch index (Add = 0, Add_1 = 1).
  const adds = new Map<number, Map<number, onnx.INodeProto>>();
  for (const node of nodes) {
    const match = OPTIMUM_LAYER.exec(node.name ?? "");
    if (!match || node.opType !== "Add") continue;
    const layer = Number(match[1]);
    if (!adds.has(layer)) adds.set(layer, new Map());
    adds.get(layer)!.set(Number(match[2] ?? 0), node);
  }
  const count = adds.size;
  if (count === 0) return undefined;
  const layers: string[] = [];
  for (let l = 0; l < count; l++) {
    const layerAdds = adds.get(l);
    // The last residual Add of the layer is resid_post; there must be exactly two.
    if (!layerAdds || layerAdds.size !== 2 || !layerAdds.has(0) || !layerAdds.has(1)) return undefined;
    layers.push(layerAdds.get(1)!.output![0]);
  }
  // hidden_states[0] is the residual input of layer 0's first Add (the operand not made inside layer 0).
  const first = adds.get(0)!.get(0)!;
  const producers = producerNames(nodes);
  const embeddings = (first.input ?? []).find((t) => !(producers.get(t) ?? "").startsWith("/model/layers.0/"));
  if (!embeddings) return undefined;
  return { scheme: "optimum", embeddings, layers, missingOutputs: [] };
}

function genaiResiduals(nodes: onnx.INodeProto[]): ResidualMap | undefined {
  const skips = new Map<number, onnx.INodeProto>(); // keyed by the layer whose resid_post it carries
  let layerCount = 0;
  let finalNorm: onnx.INodeProto | undefined;
  let embeddings: string | undefined;
  for (const node of nodes) {
    const match = GENAI_SKIP.exec(node.name ?? "");
    if (!match) continue;
    if (match[1] === undefined) {
      if (node.opType === "SkipSimplifiedLayerNormalization") finalNorm = node;
      continue;
    }
    const layer = Number(match[1]);
    layerCount = Math.max(layerCount, layer + 1);
    if (node.opType === "SkipSimplifiedLayerNormalization" && layer > 0) skips.set(layer - 1, node);
    if (layer === 0 && node.opType === "SimplifiedLayerNormalization") embeddings = node.input?.[0];
  }
  if (!finalNorm || !embeddings || skips.size !== layerCount - 1) return undefined;
  skips.set(layerCount - 1, finalNorm);
  const layers: string[] = [];
  const missingOutputs: ResidualMap["missingOutputs"] = [];
  for (let l = 0; l < layerCount; l++) {
    const node = skips.get(l)!;
    const existing = node.output?.[3];
    const tensor = existing || `${node.name}/output_3`;
    if (!existing) missingOutputs.push({ node: node.name!, index: 3, tensor });
    layers.push(tensor);
  }
  return { scheme: "genai", embeddings, layers, missingOutputs };
}

function fromOverride(override: ResidualOverride, tensors: Set<string>, nodes: onnx.INodeProto[]): ResidualMap {
  const names = "names" in override
    ? override.names
    : Array.from({ length: override.layers }, (_, l) => override.pattern.replaceAll("{layer}", String(l)));
  const missing = names.filter((n) => !tensors.has(n));
  if (missing.length) {
    throw new UserError(
      `residual override names tensors the graph does not have: ${missing.slice(0, 3).join(", ")}${
        missing.length > 3 ? ` (+${missing.length - 3} more)` : ""
      }; ${describeFound(nodes)}`,
    );
  }
  // Without a scheme we cannot tell the embedding output; the first layer's input is unknown.
  return { scheme: "override", embeddings: "", layers: names, missingOutputs: [] };
}

function producerNames(nodes: onnx.INodeProto[]): Map<string, string> {
  const producers = new Map<string, string>();
  for (const node of nodes) for (const output of node.output ?? []) producers.set(output, node.name ?? "");
  return producers;
}

/** A short description of the graph's node naming, for errors. */
function describeFound(nodes: onnx.INodeProto[]): string {
  const layerScopes = new Set<string>();
  const addNames: string[] = [];
  for (const node of nodes) {
    const scope = /^(\/[^/]+\/[^/]*\d+)\//.exec(node.name ?? "")?.[1];
    if (scope) layerScopes.add(scope.replace(/\d+$/, "{i}"));
    if ((node.opType === "Add" || node.opType?.includes("LayerNorm")) && addNames.length < 4) addNames.push(node.name!);
  }
  const scopes = [...layerScopes].slice(0, 4).join(", ") || "none";
  return `found ${nodes.length} nodes, layer-like scopes: ${scopes}; e.g. ${addNames.join(", ") || "no Add nodes"}`;
}

function notFound(nodes: onnx.INodeProto[]): never {
  throw new UserError(
    `could not find the residual stream: no Optimum (/model/layers.{i}/Add_1) or onnxruntime-genai (SkipSimplifiedLayerNormalization) layer pattern matched; ${
      describeFound(nodes)
    }; pass --residual-pattern with a {layer} placeholder or --residual-names`,
  );
}
