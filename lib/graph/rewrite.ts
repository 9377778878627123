/**
 * Graph rewrites that give transformers.js what it lacks for decoders: residual stream outputs
 * (capture), a graph cut after the last layer needed (collection costs only those layers), and
 * steering inputs that change the residual stream inside the graph, so they apply at every
 * generation step with the KV cache.
 *
 * @module
 */

import { UserError } from "../core/errors.ts";
import { steeringInputNames, type SteeringSite } from "./steering.ts";
import { GraphBuilder, valueInfo } from "./builder.ts";
import { DataType, type DecodedModel, type onnx } from "./onnx.ts";
import { locateResiduals, type ResidualMap, type ResidualOverride } from "./residuals.ts";

/** What to do to a model. Part of the rewritten model's cache key. */
export interface RewriteSpec {
  /** Layers whose resid_post becomes an output `resid_post.{L}`; -1 is the embedding output (hidden_states[0]). */
  capture: number[];
  /** Remove everything not needed for the captured outputs (no logits, no KV-cache outputs). */
  cut: boolean;
  steering: SteeringSite[];
  override?: ResidualOverride;
}

/** Name of the graph output carrying resid_post of `layer` (-1: embeddings). */
export function residualOutputName(layer: number): string {
  return layer < 0 ? "resid_pre.0" : `resid_post.${layer}`;
}

/** Applies `spec` to `model` in place and returns the residual map it used. */
export function rewriteModel(model: DecodedModel, spec: RewriteSpec): ResidualMap {
  const graph = model.graph;
  const residuals = locateResiduals(graph, spec.override);
  const layerCount = residuals.layers.length;
  for (const layer of [...spec.capture, ...spec.steering.map((s) => s.layer)]) {
    if (!Number.isInteger(layer) || layer < -1 || layer >= layerCount) {
      throw new UserError(`layer ${layer} is out of range: this model has layers 0..${layerCount - 1}`);
    }
  }
  if (spec.capture.includes(-1) && !residuals.embeddings) {
    throw new UserError("the embedding output is unknown for a graph located by an override; capture layers >= 0");
  }
  for (const { node, index, tensor } of residuals.missingOutputs) {
    const target = graph.node.find((n) => n.name === node)!;
    while ((target.output ??= []).length <= index) target.output.push("");
    target.output[index] = tensor;
  }
  // The tensor that currently carries each layer's resid_post (steering moves it).
  const current = new Map(residuals.layers.map((t, l) => [l, t]));
  spec.steering.forEach((site, index) => {
    const fusedNorm = residuals.fusedNorms?.[site.layer];
    if (fusedNorm) steerFusedNorm(graph, fusedNorm, site, index);
    else current.set(site.layer, steerTensor(graph, current.get(site.layer)!, site, index));
  });
  const captured: string[] = [];
  for (const layer of spec.capture) {
    const tensor = layer < 0 ? residuals.embeddings : current.get(layer)!;
    const name = residualOutputName(layer);
    const source = elemTypeOf(graph, tensor) === DataType.FLOAT
      ? tensor
      : castNode(graph, tensor, `/capture/${name}/Cast`, DataType.FLOAT);
    graph.node.push({ name: `/capture/${name}/Identity`, opType: "Identity", input: [source], output: [name] });
    graph.output.push(
      valueInfo({ name, elemType: DataType.FLOAT, dims: ["batch_size", "sequence_length", "hidden_size"] }),
    );
    captured.push(name);
  }
  if (spec.cut) {
    if (!captured.length) throw new UserError("a cut graph needs at least one captured layer");
    prune(graph, captured);
  }
  return residuals;
}

/**
 * The element type of tensor `name`: declared (graph input, output, value info, initializer) or
 * followed back through its producers (Cast gives its `to`; the other ops on the residual path keep
 * their first input's type). Exports differ: an fp16 Optimum graph keeps an fp16 residual stream, while
 * onnxruntime-genai's fp16 Gemma 2 keeps it in fp32 between fp16 blocks.
 */
export function elemTypeOf(graph: onnx.GraphProto, name: string): number {
  const declared = new Map<string, number>();
  for (const v of [...graph.input, ...graph.output, ...graph.valueInfo]) {
    const type = v.type?.tensorType?.elemType;
    if (v.name && type) declared.set(v.name, type);
  }
  for (const t of graph.initializer) if (t.name && t.dataType) declared.set(t.name, t.dataType);
  const producers = new Map<string, onnx.INodeProto>();
  for (const node of graph.node) for (const output of node.output ?? []) if (output) producers.set(output, node);
  const seen = new Set<string>();
  let tensor = name;
  while (!declared.has(tensor) && !seen.has(tensor)) {
    seen.add(tensor);
    const node = producers.get(tensor);
    if (!node) break;
    if (node.opType === "Cast") return Number(node.attribute?.find((a) => a.name === "to")?.i ?? DataType.FLOAT);
    const first = (node.input ?? []).find((t) => t);
    if (!first) break;
    tensor = first;
  }
  return declared.get(tensor) ?? DataType.FLOAT;
}

function castNode(graph: onnx.GraphProto, input: string, name: string, to: number): string {
  const output = `${name}_output_0`;
  graph.node.push({
    name,
    opType: "Cast",
    input: [input],
    output: [output],
    attribute: [{ name: "to", type: 2, i: to }],
  });
  return output;
}

/**
 * Adds the intervention of `site` on the residual `x32` (f32) to builder `b`: declares the site's
 * vector and scalar inputs and returns the f32 delta to add to the residual. Computed in f32 whatever
 * the residual's type: in f16, v·v overflows once |v| > 256 and the 1e-30 guard underflows to 0.
 * A zero vector gives a delta of exactly 0 for every kind.
 */
function interventionDelta(b: GraphBuilder, x32: string, site: SteeringSite, index: number): string {
  const names = steeringInputNames(index);
  const v = b.input({ name: names.vector, elemType: DataType.FLOAT, dims: ["hidden_size"] });
  const scalar = b.input({ name: names.scalar, elemType: DataType.FLOAT, dims: [] });
  // v̂ = v / max(|v|, tiny): a zero vector gives v̂ = 0.
  const norm = b.op("Sqrt", [b.op("ReduceSum", [b.op("Mul", [v, v]), b.int64([-1])], { keepdims: 1 })]);
  const unit = b.op("Div", [v, b.op("Max", [norm, b.float(1e-30)])]);
  const projection = () => b.op("ReduceSum", [b.op("Mul", [x32, unit]), b.int64([-1])], { keepdims: 1 });
  let delta: string;
  switch (site.kind) {
    case "addition":
      delta = b.op("Mul", [scalar, v]);
      break;
    case "ablation":
      delta = b.op("Sub", [b.op("Mul", [scalar, v]), b.op("Mul", [projection(), unit])]);
      break;
    case "mean_ablation":
      delta = b.op("Mul", [b.op("Sub", [scalar, projection()]), unit]);
      break;
    case "capping":
      delta = b.op("Neg", [b.op("Mul", [b.op("Relu", [b.op("Sub", [projection(), scalar])]), unit])]);
      break;
  }
  if (site.positions === "last") {
    // 1 at the last position of this forward pass, 0 elsewhere: shape [1, S, 1].
    const length = b.op("Gather", [b.op("Shape", [x32]), b.int64(1)], { axis: 0 });
    const positions = b.op("Range", [b.int64(0), length, b.int64(1)]);
    const isLast = b.op("Equal", [positions, b.op("Sub", [length, b.int64(1)])]);
    const mask = b.op("Cast", [b.op("Unsqueeze", [isLast, b.int64([0, 2])])], { to: DataType.FLOAT });
    delta = b.op("Mul", [delta, mask]);
  }
  return delta;
}

/** `t` as f32 (a Cast unless it already is). */
function asFloat(b: GraphBuilder, t: string, type: number): string {
  return type === DataType.FLOAT ? t : b.op("Cast", [t], { to: DataType.FLOAT });
}

/** `t32` (f32) back in `type`. */
function fromFloat(b: GraphBuilder, t32: string, type: number): string {
  return type === DataType.FLOAT ? t32 : b.op("Cast", [t32], { to: type });
}

/** Adds `b`'s nodes before graph node `at`, and its inputs and new initializers to the graph. */
function insertNodes(graph: onnx.GraphProto, b: GraphBuilder, at: number): void {
  graph.node.splice(at, 0, ...b.nodes);
  // Builder constants are named by their value, so one already in the graph is the same tensor.
  const existing = new Set(graph.initializer.map((t) => t.name));
  graph.initializer.push(...b.initializers.filter((t) => !existing.has(t.name)));
  graph.input.push(...b.inputs);
}

/**
 * Steers plain tensor `x` (a residual Add's output): inserts x + delta right after its producer and
 * moves every other consumer of `x` to the result, whose name it returns.
 */
function steerTensor(graph: onnx.GraphProto, x: string, site: SteeringSite, index: number): string {
  for (const output of graph.output) {
    if (output.name === x) throw new UserError(`cannot steer ${x}: it is itself a graph output`);
  }
  const dtype = elemTypeOf(graph, x);
  const b = new GraphBuilder();
  const result = b.scope(`steering.${index}`, () => {
    const x32 = asFloat(b, x, dtype);
    return fromFloat(b, b.op("Add", [x32, interventionDelta(b, x32, site, index)]), dtype);
  });
  const newNodes = new Set(b.nodes);
  for (const node of graph.node) {
    if (newNodes.has(node) || !node.input) continue;
    node.input = node.input.map((t) => (t === x ? result : t));
  }
  insertNodes(graph, b, graph.node.findIndex((n) => n.output?.includes(x)) + 1);
  return result;
}

/**
 * Steers the residual sum inside a fused `Skip[Simplified]LayerNormalization` (com.microsoft): its
 * output 0 (the next block's normalised input, or the LM head's after the final norm) is computed
 * inside the node from input + skip, so rewiring output 3 alone would leave the next block unsteered.
 * Instead the delta, computed from input + skip (+ bias), is added to the node's skip input: both
 * outputs then see the intervention, and a zero delta leaves the node's inputs bit for bit as they were.
 */
function steerFusedNorm(graph: onnx.GraphProto, nodeName: string, site: SteeringSite, index: number): void {
  const at = graph.node.findIndex((n) => n.name === nodeName);
  const node = graph.node[at];
  const [input, skip, , ...rest] = node.input!;
  // SkipSimplified: (input, skip, gamma, bias?); Skip: (input, skip, gamma, beta?, bias?).
  const bias = node.opType === "SkipSimplifiedLayerNormalization" ? rest[0] : rest[1];
  const skipType = elemTypeOf(graph, skip);
  const b = new GraphBuilder();
  node.input![1] = b.scope(`steering.${index}`, () => {
    const skip32 = asFloat(b, skip, skipType);
    let sum32 = b.op("Add", [asFloat(b, input, elemTypeOf(graph, input)), skip32]);
    if (bias) sum32 = b.op("Add", [sum32, asFloat(b, bias, elemTypeOf(graph, bias))]);
    return fromFloat(b, b.op("Add", [skip32, interventionDelta(b, sum32, site, index)]), skipType);
  });
  insertNodes(graph, b, at);
}

/** Keeps only what `outputs` depend on: nodes, inputs, initializers and value infos. */
function prune(graph: onnx.GraphProto, outputs: string[]): void {
  const needed = new Set(outputs);
  const kept: onnx.INodeProto[] = [];
  for (let i = graph.node.length - 1; i >= 0; i--) {
    const node = graph.node[i];
    if (!(node.output ?? []).some((t) => needed.has(t))) continue;
    kept.push(node);
    for (const input of node.input ?? []) if (input) needed.add(input);
  }
  graph.node = kept.reverse();
  graph.output = graph.output.filter((o) => outputs.includes(o.name!));
  graph.input = graph.input.filter((i) => needed.has(i.name!));
  graph.initializer = graph.initializer.filter((t) => needed.has(t.name!));
  graph.valueInfo = graph.valueInfo.filter((v) => needed.has(v.name!));
}
