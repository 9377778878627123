/**
 * A small ONNX graph builder that names nodes the way torch's exporter (and so Optimum) does:
 * `/model/layers.0/self_attn/q_proj/MatMul`, a second `Add` in the same scope becomes `Add_1`, and a
 * node's output is `<node name>_output_0`. Fixture models built with it carry real export naming, and
 * graph rewrites use it to add their own nodes.
 *
 * @module
 */

import { bytesOf, DataType, type onnx, proto, tensorProto } from "./onnx.ts";

/** A graph input or output declaration: element type and dims (numbers or symbolic names). */
export interface ValueSpec {
  name: string;
  elemType: number;
  dims: (number | string)[];
}

/** Attribute values accepted by {@linkcode GraphBuilder.op}. */
export type AttributeValue = number | string | number[] | { float: number } | { tensor: onnx.ITensorProto };

/** Builds nodes, initializers and I/O declarations of one ONNX graph. */
export class GraphBuilder {
  readonly nodes: onnx.INodeProto[] = [];
  readonly initializers: onnx.ITensorProto[] = [];
  readonly inputs: onnx.IValueInfoProto[] = [];
  readonly outputs: onnx.IValueInfoProto[] = [];
  #scopes: string[] = [];
  #counts = new Map<string, number>();
  #constants = new Map<string, string>();
  #initializerCount = 0;
  #domains = new Set<string>();

  /** Runs `body` with `name` appended to the node-name scope, e.g. `model`, `layers.0`, `self_attn`. */
  scope<T>(name: string, body: () => T): T {
    this.#scopes.push(name);
    try {
      return body();
    } finally {
      this.#scopes.pop();
    }
  }

  /** The current scope prefix, e.g. `/model/layers.0`. */
  get prefix(): string {
    return this.#scopes.map((s) => `/${s}`).join("");
  }

  /**
   * Adds a node of `opType` named `<scope>/<opType>[_k]` and returns its output names
   * (`<node>_output_<i>`); `outputCount` > 1 for multi-output ops.
   */
  ops(opType: string, inputs: string[], attributes: Record<string, AttributeValue> = {}, outputCount = 1): string[] {
    const base = `${this.prefix}/${opType}`;
    const seen = this.#counts.get(base) ?? 0;
    this.#counts.set(base, seen + 1);
    const name = seen === 0 ? base : `${base}_${seen}`;
    const output = Array.from({ length: outputCount }, (_, i) => `${name}_output_${i}`);
    this.nodes.push({ name, opType, input: inputs, output, attribute: encodeAttributes(attributes) });
    return output;
  }

  /**
   * Adds a node with an explicit name (`<scope>/<name>`) and explicit output names, for layouts that
   * do not follow torch's naming (onnxruntime-genai's builder); `""` leaves an optional output out.
   */
  named(
    name: string,
    opType: string,
    inputs: string[],
    outputs: string[],
    attributes: Record<string, AttributeValue> = {},
    domain = "",
  ): string[] {
    this.nodes.push({
      name: `${this.prefix}/${name}`,
      opType,
      domain,
      input: inputs,
      output: outputs,
      attribute: encodeAttributes(attributes),
    });
    if (domain) this.#domains.add(domain);
    return outputs;
  }

  /** {@linkcode ops} for the common single-output case. */
  op(opType: string, inputs: string[], attributes: Record<string, AttributeValue> = {}): string {
    return this.ops(opType, inputs, attributes)[0];
  }

  /** Adds an initializer; without a name it gets torch's `onnx::<Op>_<k>` style name. */
  initializer(
    data: Float32Array | BigInt64Array | Uint8Array,
    dims: readonly number[],
    name = `onnx::Initializer_${this.#initializerCount++}`,
    dataType?: number,
  ): string {
    this.initializers.push(tensorProto(name, dims, data, dataType));
    return name;
  }

  /**
   * Adds an initializer whose bytes stay in file `location` (relative to the model), `length` bytes
   * from `offset`: e.g. a tensor of a safetensors file, referenced where it lies.
   */
  externalInitializer(
    name: string,
    dims: readonly number[],
    dataType: number,
    location: string,
    offset: number,
    length: number,
  ): string {
    this.initializers.push({
      name,
      dims: [...dims],
      dataType,
      dataLocation: proto.TensorProto.DataLocation.EXTERNAL,
      externalData: [
        { key: "location", value: location },
        { key: "offset", value: String(offset) },
        { key: "length", value: String(length) },
      ],
    });
    return name;
  }

  /** A shared f32 scalar or 1-D constant (deduplicated by value). */
  float(values: number | number[]): string {
    const list = typeof values === "number" ? [values] : values;
    const key = `f:${typeof values === "number" ? "s" : "v"}:${list.join(",")}`;
    return this.#constant(
      key,
      () => this.initializer(new Float32Array(list), typeof values === "number" ? [] : [list.length], `const_${key}`),
    );
  }

  /** A shared f16 scalar (deduplicated by value): constants of an fp16 graph's f16 arithmetic. */
  half(value: number): string {
    const key = `h:s:${value}`;
    return this.#constant(
      key,
      () => this.initializer(bytesOf(Float16Array.of(value)), [], `const_${key}`, DataType.FLOAT16),
    );
  }

  /** A shared int64 scalar or 1-D constant (deduplicated by value). */
  int64(values: number | number[]): string {
    const list = typeof values === "number" ? [values] : values;
    const key = `i:${typeof values === "number" ? "s" : "v"}:${list.join(",")}`;
    return this.#constant(key, () =>
      this.initializer(
        BigInt64Array.from(list, BigInt),
        typeof values === "number" ? [] : [list.length],
        `const_${key}`,
        DataType.INT64,
      ));
  }

  #constant(key: string, make: () => string): string {
    let name = this.#constants.get(key);
    if (!name) {
      name = make();
      this.#constants.set(key, name);
    }
    return name;
  }

  /** Declares a graph input. */
  input(spec: ValueSpec): string {
    this.inputs.push(valueInfo(spec));
    return spec.name;
  }

  /** Declares a graph output, renaming `tensor` to `spec.name` through an Identity when they differ. */
  output(tensor: string, spec: ValueSpec): void {
    if (tensor !== spec.name) {
      this.nodes.push({ name: `/output/${spec.name}`, opType: "Identity", input: [tensor], output: [spec.name] });
    }
    this.outputs.push(valueInfo(spec));
  }

  /** The finished model. */
  build(name: string, opset = 17): onnx.IModelProto {
    return {
      irVersion: 8,
      producerName: "model-diff fixtures",
      opsetImport: [{ domain: "", version: opset }, ...[...this.#domains].map((domain) => ({ domain, version: 1 }))],
      graph: {
        name,
        node: this.nodes,
        initializer: this.initializers,
        input: this.inputs,
        output: this.outputs,
      },
    };
  }
}

/** A value-info record (tensor type and shape) for graph inputs and outputs. */
export function valueInfo(spec: ValueSpec): onnx.IValueInfoProto {
  return {
    name: spec.name,
    type: {
      tensorType: {
        elemType: spec.elemType,
        shape: { dim: spec.dims.map((d) => typeof d === "number" ? { dimValue: d } : { dimParam: d }) },
      },
    },
  };
}

function encodeAttributes(attributes: Record<string, AttributeValue>): onnx.IAttributeProto[] {
  // AttributeType: FLOAT=1, INT=2, STRING=3, TENSOR=4, FLOATS=6, INTS=7
  return Object.entries(attributes).map(([name, value]) => {
    if (typeof value === "number") return { name, type: 2, i: value };
    if (typeof value === "string") return { name, type: 3, s: new TextEncoder().encode(value) };
    if (Array.isArray(value)) return { name, type: 7, ints: value };
    if ("float" in value) return { name, type: 1, f: value.float };
    return { name, type: 4, t: value.tensor };
  });
}
