/**
 * Graph rewrites that give transformers.js what it lacks for decoders: residual stream outputs
 * (capture), a graph cut after the last layer needed (collection costs only those layers), and
 * steering inputs that change the residual stream inside the graph, so they apply at every
 * generation step with the KV cache.
 *
 * @module
 */

import { UserError } from "../errors.ts";
import { steeringInputNames, type SteeringSite } from "../steering.ts";
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
  const dtype = residualType(graph);
  // The tensor that currently carries each layer's resid_post (steering moves it).
  const current = new Map(residuals.layers.map((t, l) => [l, t]));
  spec.steering.forEach((site, index) => {
    const steered = insertSteering(graph, current.get(site.layer)!, site, index, dtype);
    current.set(site.layer, steered);
  });
  const captured: string[] = [];
  for (const layer of spec.capture) {
    const tensor = layer < 0 ? residuals.embeddings : current.get(layer)!;
    const name = residualOutputName(layer);
    const source = dtype === DataType.FLOAT ? tensor : castNode(graph, tensor, `/capture/${name}/Cast`, DataType.FLOAT);
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

/** The residual stream's element type: that of the logits output (f16 exports keep f16 activations). */
function residualType(graph: onnx.GraphProto): number {
  const logits = graph.output.find((o) => o.name === "logits");
  return logits?.type?.tensorType?.elemType ?? DataType.FLOAT;
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
 * Inserts the intervention of `site` on tensor `x` right after its producer and moves every other
 * consumer (and graph output) of `x` to the result; returns the result's name.
 */
function insertSteering(graph: onnx.GraphProto, x: string, site: SteeringSite, index: number, dtype: number): string {
  const b = new GraphBuilder();
  const names = steeringInputNames(index);
  b.input({ name: names.vector, elemType: DataType.FLOAT, dims: ["hidden_size"] });
  b.input({ name: names.scalar, elemType: DataType.FLOAT, dims: [] });
  const result = b.scope(`steering.${index}`, () => {
    const asResidual = (t: string) => (dtype === DataType.FLOAT ? t : b.op("Cast", [t], { to: dtype }));
    const v = asResidual(names.vector);
    const scalar = asResidual(names.scalar);
    // v̂ = v / max(|v|, tiny): a zero vector gives v̂ = 0, so every kind leaves x unchanged.
    const norm = b.op("Sqrt", [b.op("ReduceSum", [b.op("Mul", [v, v]), b.int64([-1])], { keepdims: 1 })]);
    const unit = b.op("Div", [v, b.op("Max", [norm, asResidual(b.float(1e-30))])]);
    const projection = () => b.op("ReduceSum", [b.op("Mul", [x, unit]), b.int64([-1])], { keepdims: 1 });
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
      const length = b.op("Gather", [b.op("Shape", [x]), b.int64(1)], { axis: 0 });
      const positions = b.op("Range", [b.int64(0), length, b.int64(1)]);
      const isLast = b.op("Equal", [positions, b.op("Sub", [length, b.int64(1)])]);
      const mask = b.op("Cast", [b.op("Unsqueeze", [isLast, b.int64([0, 2])])], { to: dtype });
      delta = b.op("Mul", [delta, mask]);
    }
    return b.op("Add", [x, delta]);
  });
  const newNodes = new Set(b.nodes);
  for (const node of graph.node) {
    if (newNodes.has(node) || !node.input) continue;
    node.input = node.input.map((t) => (t === x ? result : t));
  }
  for (const output of graph.output) {
    if (output.name === x) throw new UserError(`cannot steer ${x}: it is itself a graph output`);
  }
  const producer = graph.node.findIndex((n) => n.output?.includes(x));
  graph.node.splice(producer + 1, 0, ...b.nodes);
  graph.initializer.push(...b.initializers);
  graph.input.push(...b.inputs);
  return result;
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
