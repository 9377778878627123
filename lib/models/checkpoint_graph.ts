/**
 * The runnable graph of a Hugging Face checkpoint, built from its files wherever they are (a folder on
 * disk, the files a page was given): the decoder graph from config.json (lib/models/decoder_graph.ts)
 * with its weights as external data. Tensors stored in the graph's precision are referenced where they
 * lie in the checkpoint's safetensors files (offset into the file, no copy); the others (BF16 always:
 * onnxruntime-web has no BF16 kernels) are converted tensor by tensor into one file, written through a
 * {@linkcode ByteSink} so the CLI streams it to disk and a page to its storage.
 *
 * @module
 */

import type { Checkpoint } from "./checkpoint.ts";
import type { GraphBuilder } from "../graph/builder.ts";
import { bytesOf, DataType, encodeModel } from "../graph/onnx.ts";
import { UserError } from "../core/errors.ts";
import { assertFinite } from "../io/finite.ts";
import { toFloat32 } from "../io/safetensors.ts";
import { hfConfigOf } from "./config.ts";
import { buildDecoderGraph, type GraphDtype, type WeightSource } from "./decoder_graph.ts";

/** Per graph precision: the safetensors dtype used in place, the ONNX type and the converted file. */
const STORAGE = {
  fp32: { stored: "F32", onnx: DataType.FLOAT, file: "converted_f32.bin" },
  fp16: { stored: "F16", onnx: DataType.FLOAT16, file: "converted_f16.bin" },
} as const;

/** The name of the file the converted tensors of a `dtype` graph go into (beside the graph). */
export function convertedFileName(dtype: GraphDtype): string {
  return STORAGE[dtype].file;
}

/** Where converted bytes are written: a file on disk, a page's storage, memory. */
export interface ByteSink {
  write(offset: number, bytes: Uint8Array): Promise<void>;
}

/** Progress of a conversion (bytes written so far of `total`). */
export type ConversionProgress = (done: number, total: number) => void;

/** Where each converted tensor went in the converted file. */
export type ConvertedTensors = Map<string, { offset: number; length: number }>;

const F16_MAX = 65504;

/**
 * `values` rounded to f16; a value beyond f16's range is refused (it would become infinite). The test
 * is written so that NaN fails it too (`Math.abs(NaN) > F16_MAX` is false).
 */
function toFloat16(values: Float32Array, what: string): Float16Array {
  for (let i = 0; i < values.length; i++) {
    if (!(Math.abs(values[i]) <= F16_MAX)) {
      throw new UserError(
        `${what} holds ${values[i]} at index ${i}, beyond fp16's range (±${F16_MAX}): use --dtype fp32 for this model`,
      );
    }
  }
  return Float16Array.from(values);
}

/** Bytes read per step when checking a tensor used in place: bounded memory for multi-GB embeddings. */
const CHECK_CHUNK_BYTES = 16 * 1024 * 1024;

/**
 * Checks that every tensor the graph references in place (stored in `dtype` already) is finite: read
 * once, in chunks, when the graph is built, so a cached graph (keyed by the checkpoint's identity)
 * never pays again.
 */
export async function checkInPlaceTensors(checkpoint: Checkpoint, dtype: GraphDtype): Promise<void> {
  const stored = STORAGE[dtype].stored;
  const bytesPerValue = stored === "F32" ? 4 : 2;
  const chunkBytes = CHECK_CHUNK_BYTES - (CHECK_CHUNK_BYTES % bytesPerValue);
  for (const tensor of checkpoint.tensors.values()) {
    if (tensor.dtype !== stored) continue;
    for (let done = 0; done < tensor.length; done += chunkBytes) {
      const read = await checkpoint.source.read(
        tensor.file,
        tensor.offset + done,
        Math.min(chunkBytes, tensor.length - done),
      );
      const chunk = read.byteOffset % 4 === 0 ? read : read.slice();
      const values = stored === "F32"
        ? new Float32Array(chunk.buffer, chunk.byteOffset, chunk.length / 4)
        : new Float16Array(chunk.buffer, chunk.byteOffset, chunk.length / 2);
      assertFinite(values, {
        file: checkpoint.source.label(tensor.file),
        tensor: tensor.name,
        offset: done / bytesPerValue,
        total: tensor.length / bytesPerValue,
      });
    }
  }
}

/**
 * Writes every tensor not stored in `dtype` into `sink` in `dtype`, one tensor at a time
 * (4096-aligned), and returns where each went.
 */
export async function convertTensors(
  checkpoint: Checkpoint,
  dtype: GraphDtype,
  sink: ByteSink,
  onProgress?: ConversionProgress,
): Promise<ConvertedTensors> {
  const todo = [...checkpoint.tensors.values()].filter((t) => t.dtype !== STORAGE[dtype].stored);
  const placed: ConvertedTensors = new Map();
  if (!todo.length) return placed;
  const bytesPerValue = dtype === "fp16" ? 2 : 4;
  const total = todo.reduce((n, t) => n + (t.length / (t.dtype === "F32" ? 4 : 2)) * bytesPerValue, 0);
  onProgress?.(0, total); // the clock of a progress bar starts before the first tensor, not after it
  let offset = 0;
  let done = 0;
  for (const tensor of todo) {
    const raw = await checkpoint.source.read(tensor.file, tensor.offset, tensor.length);
    const path = checkpoint.source.label(tensor.file);
    const values = toFloat32(tensor.dtype, raw, `${path}:${tensor.name}`);
    assertFinite(values, { file: path, tensor: tensor.name });
    offset = Math.ceil(offset / 4096) * 4096;
    const bytes = bytesOf(dtype === "fp16" ? toFloat16(values, `${path}: tensor ${tensor.name}`) : values);
    await sink.write(offset, bytes);
    placed.set(tensor.name, { offset, length: bytes.length });
    offset += bytes.length;
    done += bytes.length;
    onProgress?.(done, total);
  }
  return placed;
}

/** External-data initializers into the checkpoint's files (stored in `dtype`) or the converted file. */
function checkpointWeights(checkpoint: Checkpoint, converted: ConvertedTensors, dtype: GraphDtype) {
  const made = new Map<string, string>();
  const { onnx: type, file } = STORAGE[dtype];
  const source: WeightSource = {
    dtype,
    has: (name) => checkpoint.tensors.has(name),
    tensor(b: GraphBuilder, name: string, shape: number[], graphName = name) {
      const key = `${name}->${graphName}`;
      if (!made.has(key)) {
        const tensor = checkpoint.tensors.get(name)!;
        const moved = converted.get(name);
        made.set(
          key,
          moved
            ? b.externalInitializer(graphName, shape, type, file, moved.offset, moved.length)
            : b.externalInitializer(graphName, shape, type, tensor.file, tensor.offset, tensor.length),
        );
      }
      return made.get(key)!;
    },
    // HF Linear weights are [out, in]; the graph multiplies by their transpose (folded at load).
    linear(b: GraphBuilder, name: string, out: number, inp: number) {
      return b.op("Transpose", [source.tensor(b, name, [out, inp])], { perm: [1, 0] });
    },
  };
  return source;
}

/**
 * The decoder graph of `checkpoint` at `dtype`, encoded, its external data naming the checkpoint's
 * safetensors files and {@linkcode convertedFileName} (with `converted`, what
 * {@linkcode convertTensors} placed there).
 */
export function checkpointGraph(checkpoint: Checkpoint, converted: ConvertedTensors, dtype: GraphDtype): Uint8Array {
  return encodeModel(buildDecoderGraph(checkpoint.config, checkpointWeights(checkpoint, converted, dtype)));
}

/**
 * The config.json a runtime reads for `checkpoint`: its own, except that a multimodal Gemma 3 config
 * (model_type "gemma3") nests the decoder in text_config with defaults left out, so the decoder's own
 * fields are written out as a gemma3_text checkpoint has them (special token ids kept).
 */
export function runtimeConfigJson(checkpoint: Checkpoint): Record<string, unknown> {
  const raw = checkpoint.rawConfig;
  if (raw.model_type !== "gemma3") return raw;
  const ids = Object.fromEntries(
    ["bos_token_id", "eos_token_id", "pad_token_id"].flatMap((key) => {
      const value = raw[key] ?? (raw.text_config as Record<string, unknown>)[key];
      return value === undefined ? [] : [[key, value]];
    }),
  );
  return { ...hfConfigOf(checkpoint.config), ...ids };
}
