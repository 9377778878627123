/**
 * Finding the residual stream in a decoder's ONNX graph: the tensor after each decoder layer
 * (HF `hidden_states[L+1]`, "resid_post") and the embedding output (`hidden_states[0]`).
 *
 * Two export schemes are recognised:
 * - Optimum (torch.onnx): each layer's residual additions are the only `Add` nodes directly in
 *   scope `/model/layers.{i}`: `Add` after attention, `Add_1` after the MLP = resid_post.
 * - onnxruntime-genai's model builder (`src/python/py/models/builders/base.py`, `make_layernorm`):
 *   residual additions are fused into `Skip[Simplified]LayerNormalization` nodes named
 *   `/model/layers.{i}/{location}_layernorm/SkipLayerNorm`; output 3 (input + skip) of layer i+1's
 *   `input_layernorm` is resid_post of layer i, and for the last layer that of the final norm,
 *   `/model/layers.{N}/final_norm_layernorm/SkipLayerNorm` (N = number of layers), which the builder
 *   lists with output 0 only. Layer 0's input norm is a plain `[Simplified]LayerNormalization` of the
 *   embeddings.
 * - Any other export of such a decoder, e.g. torch's dynamo exporter (`torch.onnx.export(...,
 *   dynamo=True)`, Optimum's `--dynamo`), which names nodes after FX nodes (`node_add_8` producing
 *   `add_8`, torch/onnx/_internal/exporter/_core.py) with no layer in the name: the residual stream
 *   is found by structure, as the chain of Adds that starts at the token embedding, each adding a
 *   block's output to the previous sum; two per layer, the second being resid_post.
 * Anything else needs an explicit override: a pattern with `{layer}` or a list of tensor names.
 *
 * @module
 */

import { UserError } from "../core/errors.ts";
import type { onnx } from "./onnx.ts";

/** Where the residual stream is in one graph. */
export interface ResidualMap {
  scheme: "optimum" | "genai" | "chain" | "override";
  /** hidden_states[0]: the input of the first decoder layer. */
  embeddings: string;
  /** resid_post[i]: the output of decoder layer i (= hidden_states[i + 1]). */
  layers: string[];
  /**
   * Genai graphs may not list output 3 of a SkipSimplifiedLayerNormalization; these nodes need it
   * added (by node name) before the tensor exists.
   */
  missingOutputs: { node: string; index: number; tensor: string }[];
  /**
   * Genai: per layer, the fused norm node whose output 3 is resid_post. Steering acts on that node's
   * inputs, because its output 0 (the next block's normalised input) is computed inside it.
   */
  fusedNorms?: string[];
}

/** An explicit residual location: a pattern such as `/model/layers.{layer}/Add_1_output_0`, or names. */
export type ResidualOverride = { pattern: string; layers: number } | { names: string[] };

const OPTIMUM_LAYER = /^\/model\/layers\.(\d+)\/Add(?:_(\d+))?$/;
const GENAI_NORM = /^\/model\/layers\.(\d+)\/(input|final_norm)_layernorm\/(Skip)?LayerNorm$/;
const FUSED_NORMS = new Set(["SkipSimplifiedLayerNormalization", "SkipLayerNormalization"]);
const PLAIN_NORMS = new Set(["SimplifiedLayerNormalization", "LayerNormalization"]);

/** Locates the residual stream of `graph`, or throws a {@linkcode UserError} listing what was found. */
export function locateResiduals(graph: onnx.IGraphProto, override?: ResidualOverride): ResidualMap {
  const nodes = graph.node ?? [];
  const tensors = new Set(nodes.flatMap((n) => n.output ?? []));
  if (override) return fromOverride(override, tensors, nodes);
  return optimumResiduals(nodes) ?? genaiResiduals(nodes) ?? chainResiduals(graph) ?? notFound(nodes);
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
  const fused = new Map<number, onnx.INodeProto>(); // keyed by the layer whose resid_post it carries
  let finalNorm: { layer: number; node: onnx.INodeProto } | undefined;
  let embeddings: string | undefined;
  for (const node of nodes) {
    const match = GENAI_NORM.exec(node.name ?? "");
    if (!match) continue;
    const layer = Number(match[1]);
    const isFused = FUSED_NORMS.has(node.opType ?? "") && match[3] === "Skip";
    if (match[2] === "final_norm") {
      if (isFused) finalNorm = { layer, node };
    } else if (layer === 0 && PLAIN_NORMS.has(node.opType ?? "")) embeddings = node.input?.[0];
    else if (layer > 0 && isFused) fused.set(layer - 1, node);
  }
  if (!finalNorm || !embeddings) return undefined;
  const layerCount = finalNorm.layer;
  if (layerCount < 1 || fused.size !== layerCount - 1) return undefined;
  fused.set(layerCount - 1, finalNorm.node);
  const layers: string[] = [];
  const missingOutputs: ResidualMap["missingOutputs"] = [];
  for (let l = 0; l < layerCount; l++) {
    const node = fused.get(l);
    if (!node) return undefined;
    const existing = node.output?.[3];
    const tensor = existing || `${node.name}/output_3`;
    if (!existing) missingOutputs.push({ node: node.name!, index: 3, tensor });
    layers.push(tensor);
  }
  const fusedNorms = layers.map((_, l) => fused.get(l)!.name!);
  return { scheme: "genai", embeddings, layers, missingOutputs, fusedNorms };
}

/**
 * The residual chain: from the token embedding (the Gather of `input_ids`, through a constant scale
 * as in Gemma), each residual Add consumes the running sum and a block output that itself depends on
 * that sum. Stops where the sum is no longer added to (the final norm).
 */
function chainResiduals(graph: onnx.IGraphProto): ResidualMap | undefined {
  const nodes = graph.node ?? [];
  const constants = new Set((graph.initializer ?? []).map((t) => t.name!));
  const consumers = new Map<string, onnx.INodeProto[]>();
  const producer = new Map<string, onnx.INodeProto>();
  for (const node of nodes) {
    for (const input of node.input ?? []) if (input) consumers.set(input, [...(consumers.get(input) ?? []), node]);
    for (const output of node.output ?? []) if (output) producer.set(output, node);
  }
  const gather = nodes.find((n) => n.opType === "Gather" && n.input?.[1] === "input_ids" && constants.has(n.input[0]));
  if (!gather) return undefined;
  let embeddings = gather.output![0];
  const scale = consumers.get(embeddings) ?? [];
  if (scale.length === 1 && scale[0].opType === "Mul" && scale[0].input!.some((t) => constants.has(t))) {
    embeddings = scale[0].output![0];
  }
  /** Whether `tensor` is computed from `source` (bounded walk back through producers). */
  const dependsOn = (tensor: string, source: string) => {
    const seen = new Set<string>();
    const stack = [tensor];
    while (stack.length) {
      const t = stack.pop()!;
      if (t === source) return true;
      if (seen.has(t)) continue;
      seen.add(t);
      for (const input of producer.get(t)?.input ?? []) if (input && !constants.has(input)) stack.push(input);
    }
    return false;
  };
  const sums: string[] = [];
  let current = embeddings;
  for (;;) {
    const adds = (consumers.get(current) ?? []).filter((n) => {
      if (n.opType !== "Add" || n.input?.length !== 2) return false;
      const other = n.input[0] === current ? n.input[1] : n.input[0];
      return other !== current && !constants.has(other) && dependsOn(other, current);
    });
    if (adds.length !== 1) break;
    current = adds[0].output![0];
    sums.push(current);
  }
  if (sums.length < 2 || sums.length % 2) return undefined;
  const layers = sums.filter((_, i) => i % 2 === 1);
  return { scheme: "chain", embeddings, layers, missingOutputs: [] };
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
    `could not find the residual stream: no Optimum (/model/layers.{i}/Add_1) or onnxruntime-genai (SkipSimplifiedLayerNormalization) layer pattern matched, nor a chain of residual Adds from the embedding; ${
      describeFound(nodes)
    }; pass --residual-pattern with a {layer} placeholder or --residual-names`,
  );
}
