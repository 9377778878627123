/**
 * ONNX protobuf reading and writing, including weights kept in external data files, so that graph
 * rewriting never has to pull a multi-gigabyte weight file into JS memory.
 *
 * @module
 */

import type { onnx } from "onnx-proto";
import protoRoot from "onnx-proto";
import { UserError } from "../core/errors.ts";

/** The generated protobuf classes (the package is CommonJS with one `onnx` namespace on its root). */
export const proto: typeof onnx = (protoRoot as unknown as { onnx: typeof onnx }).onnx;
export type { onnx };

/** ONNX element types used here (TensorProto.DataType). */
export const DataType = {
  FLOAT: 1,
  INT32: 6,
  INT64: 7,
  BOOL: 9,
  FLOAT16: 10,
  BFLOAT16: 16,
} as const;

/** A decoded model whose graph is known to be present. */
export type DecodedModel = onnx.ModelProto & { graph: onnx.GraphProto };

/** Decodes ONNX bytes; `source` names the file in the error a corrupt file gives. */
export function decodeModel(bytes: Uint8Array, source: string): DecodedModel {
  try {
    const model = proto.ModelProto.decode(bytes);
    if (!model.graph) throw new Error("no graph");
    return model as DecodedModel;
  } catch (error) {
    throw new UserError(
      `${source} is not a valid ONNX model (${(error as Error).message}); re-export or re-download it`,
    );
  }
}

/** Encodes a model to protobuf bytes. */
export function encodeModel(model: onnx.IModelProto): Uint8Array {
  return proto.ModelProto.encode(model).finish();
}

/** The external data file names (relative to the model's directory) that a model's initializers use. */
export function externalDataLocations(model: onnx.IModelProto): string[] {
  const locations = new Set<string>();
  for (const tensor of model.graph?.initializer ?? []) {
    if (tensor.dataLocation !== proto.TensorProto.DataLocation.EXTERNAL) continue;
    const location = tensor.externalData?.find((entry) => entry.key === "location")?.value;
    if (location) locations.add(location);
  }
  return [...locations];
}

/** Little-endian bytes of a typed array, sharing its memory. */
export function bytesOf(array: ArrayBufferView): Uint8Array {
  return new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
}

/** An initializer holding `data` inline. */
export function tensorProto(
  name: string,
  dims: readonly number[],
  data: Float32Array | BigInt64Array | Uint8Array,
  dataType?: number,
): onnx.ITensorProto {
  const type = dataType ??
    (data instanceof Float32Array ? DataType.FLOAT : data instanceof BigInt64Array ? DataType.INT64 : DataType.BOOL);
  return { name, dims: [...dims], dataType: type, rawData: bytesOf(data) };
}

/**
 * Moves initializers into one external data file, as exporters do for large models; returns the
 * file's bytes (offsets are 4096-aligned so runtimes can map them). By default those of at least
 * 1024 bytes move (onnx's `size_threshold`); `moves` picks others.
 */
export function externaliseInitializers(
  model: onnx.IModelProto,
  location: string,
  moves: (tensor: onnx.ITensorProto) => boolean = (t) => (t.rawData?.byteLength ?? 0) >= 1024,
): Uint8Array {
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const tensor of model.graph?.initializer ?? []) {
    const raw = tensor.rawData;
    if (!raw || !moves(tensor)) continue;
    const padding = (4096 - (offset % 4096)) % 4096;
    if (padding) chunks.push(new Uint8Array(padding));
    offset += padding;
    chunks.push(raw);
    tensor.rawData = undefined;
    tensor.dataLocation = proto.TensorProto.DataLocation.EXTERNAL;
    tensor.externalData = [
      { key: "location", value: location },
      { key: "offset", value: String(offset) },
      { key: "length", value: String(raw.byteLength) },
    ];
    offset += raw.byteLength;
  }
  const out = new Uint8Array(offset);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.byteLength;
  }
  return out;
}
