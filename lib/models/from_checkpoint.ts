/**
 * A Hugging Face checkpoint made runnable without an export step: the decoder graph is built from
 * config.json (lib/models/decoder_graph.ts, Optimum's layout and naming) with its weights as external
 * data, at fp32 or fp16. Tensors already stored in the graph's precision are referenced where they lie
 * in the checkpoint's safetensors files (offset into the file, no copy); the others (BF16 always:
 * onnxruntime-web has no BF16 kernels) are converted once, tensor by tensor, into one file. The result is a transformers.js-layout directory in a cache
 * keyed by the checkpoint's identity and the building code, so every other part of the toolkit
 * (capture, cut, steering, generation) treats it like an ONNX export.
 *
 * @module
 */

import { basename, join } from "node:path";
import { type Checkpoint, openCheckpoint } from "./checkpoint.ts";
import type { GraphBuilder } from "../graph/builder.ts";
import { bytesOf, DataType, encodeModel } from "../graph/onnx.ts";
import { UserError } from "../core/errors.ts";
import { cacheEntry, cacheRoot } from "../io/cache_store.ts";
import { codeDigest, fileIdentity, sha256Hex } from "../io/digest.ts";
import { linkFile, readRange, readRangeInto, regularFiles, writeRange } from "../io/files.ts";
import { assertFinite } from "../io/finite.ts";
import { readJsonObject } from "../io/json.ts";
import { toFloat32 } from "../io/safetensors.ts";
import { hfConfigOf } from "./config.ts";
import { buildDecoderGraph, type GraphDtype, type WeightSource } from "./decoder_graph.ts";

/** Where graphs built from checkpoints are kept (override with MODEL_DIFF_CHECKPOINT_CACHE). */
export function checkpointCacheRoot(): string {
  return cacheRoot("checkpoint");
}

/** The modules whose code determines the built graph (part of the cache key). */
const BUILD_SOURCES = [
  "./from_checkpoint.ts",
  "./decoder_graph.ts",
  "./config.ts",
  "./checkpoint.ts",
  "../graph/builder.ts",
  "../graph/onnx.ts",
];

/** Tokenizer files a checkpoint folder brings (each must be a JSON object when present). */
const TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json"];

/** Per graph precision: the safetensors dtype used in place, the ONNX type and the converted file. */
const STORAGE = {
  fp32: { stored: "F32", onnx: DataType.FLOAT, file: "converted_f32.bin" },
  fp16: { stored: "F16", onnx: DataType.FLOAT16, file: "converted_f16.bin" },
} as const;

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
async function checkInPlaceTensors(checkpoint: Checkpoint, dtype: GraphDtype): Promise<void> {
  const stored = STORAGE[dtype].stored;
  const bytesPerValue = stored === "F32" ? 4 : 2;
  const chunkBytes = CHECK_CHUNK_BYTES - (CHECK_CHUNK_BYTES % bytesPerValue);
  const buffer = new Uint8Array(chunkBytes);
  const files = new Map<string, Deno.FsFile>();
  try {
    for (const tensor of checkpoint.tensors.values()) {
      if (tensor.dtype !== stored) continue;
      const path = join(checkpoint.dir, tensor.file);
      if (!files.has(path)) files.set(path, await Deno.open(path));
      for (let done = 0; done < tensor.length; done += chunkBytes) {
        const chunk = buffer.subarray(0, Math.min(chunkBytes, tensor.length - done));
        await readRangeInto(files.get(path)!, tensor.offset + done, chunk, path);
        const values = stored === "F32"
          ? new Float32Array(chunk.buffer, 0, chunk.length / 4)
          : new Float16Array(chunk.buffer, 0, chunk.length / 2);
        assertFinite(values, {
          file: path,
          tensor: tensor.name,
          offset: done / bytesPerValue,
          total: tensor.length / bytesPerValue,
        });
      }
    }
  } finally {
    for (const file of files.values()) file.close();
  }
}

/** Progress of a conversion (bytes written so far of `total`). */
export type ConversionProgress = (done: number, total: number) => void;

/**
 * The identity of a checkpoint: every safetensors file (size, sampled content), the index, config
 * and tokenizer files, with paths and modification times (the cache is machine-local).
 */
async function checkpointIdentity(checkpoint: Checkpoint): Promise<string> {
  // Every file the built entry links: a template or generation setting edited in place (or replaced,
  // which a hard link would not follow) must not leave the entry's copy behind.
  const names = [
    ...checkpoint.files,
    "model.safetensors.index.json",
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "generation_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
  ];
  const parts: string[] = [];
  for (const name of names) {
    const identity = await fileIdentity(join(checkpoint.dir, name)).catch(() => undefined);
    if (identity) parts.push(JSON.stringify([name, identity]));
  }
  return sha256Hex(parts);
}

/**
 * Writes every tensor not stored in `dtype` into `path` in `dtype`, one tensor at a time
 * (4096-aligned), and returns where each went.
 */
async function convertTensors(
  checkpoint: Checkpoint,
  path: string,
  dtype: GraphDtype,
  onProgress?: ConversionProgress,
): Promise<Map<string, { offset: number; length: number }>> {
  const todo = [...checkpoint.tensors.values()].filter((t) => t.dtype !== STORAGE[dtype].stored);
  const placed = new Map<string, { offset: number; length: number }>();
  if (!todo.length) return placed;
  const bytesPerValue = dtype === "fp16" ? 2 : 4;
  const total = todo.reduce((n, t) => n + (t.length / (t.dtype === "F32" ? 4 : 2)) * bytesPerValue, 0);
  onProgress?.(0, total); // the clock of a progress bar starts before the first tensor, not after it
  const out = await Deno.open(path, { write: true, create: true, truncate: true });
  const sources = new Map<string, Deno.FsFile>();
  try {
    let offset = 0;
    let done = 0;
    for (const tensor of todo) {
      if (!sources.has(tensor.file)) sources.set(tensor.file, await Deno.open(join(checkpoint.dir, tensor.file)));
      const raw = await readRange(
        sources.get(tensor.file)!,
        tensor.offset,
        tensor.length,
        join(checkpoint.dir, tensor.file),
      );
      const path = join(checkpoint.dir, tensor.file);
      const values = toFloat32(tensor.dtype, raw, `${path}:${tensor.name}`);
      assertFinite(values, { file: path, tensor: tensor.name });
      const what = `${path}: tensor ${tensor.name}`;
      offset = Math.ceil(offset / 4096) * 4096;
      const bytes = bytesOf(dtype === "fp16" ? toFloat16(values, what) : values);
      await writeRange(out, offset, bytes);
      placed.set(tensor.name, { offset, length: bytes.length });
      offset += bytes.length;
      done += bytes.length;
      onProgress?.(done, total);
    }
  } finally {
    out.close();
    for (const file of sources.values()) file.close();
  }
  return placed;
}

/** External-data initializers into the checkpoint's files (stored in `dtype`) or the converted file. */
function checkpointWeights(
  checkpoint: Checkpoint,
  converted: Map<string, { offset: number; length: number }>,
  dtype: GraphDtype,
) {
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

/** The decoder's config.json for a checkpoint whose own nests it: its fields, special token ids kept. */
function decoderConfigJson(checkpoint: Checkpoint): Record<string, unknown> {
  const raw = checkpoint.rawConfig;
  const ids = Object.fromEntries(
    ["bos_token_id", "eos_token_id", "pad_token_id"].flatMap((key) => {
      const value = raw[key] ?? (raw.text_config as Record<string, unknown>)[key];
      return value === undefined ? [] : [[key, value]];
    }),
  );
  return { ...hfConfigOf(checkpoint.config), ...ids };
}

/**
 * The transformers.js-layout directory for the checkpoint in `dir` at precision `dtype` (default
 * fp32): graph built and weights converted on first use, then cached. Bad checkpoints are refused in
 * one line; nothing is left half-written in the cache.
 */
export async function modelDirFromCheckpoint(
  dir: string,
  options: { dtype?: GraphDtype; log?: (line: string) => void; onProgress?: ConversionProgress } = {},
): Promise<string> {
  const dtype = options.dtype ?? "fp32";
  const checkpoint = await openCheckpoint(dir);
  const code = await codeDigest(BUILD_SOURCES.map((s) => new URL(s, import.meta.url)));
  const key = (await sha256Hex([await checkpointIdentity(checkpoint), code, dtype])).slice(0, 24);
  const entry = await cacheEntry("checkpoint", key, {
    log: options.log,
    fill: async (temp, target) => {
      options.log?.(`building the ${dtype} ${checkpoint.config.family} graph of ${dir} into ${target}`);
      // The tokenizer files are linked as they are: one that is not JSON is the user's file to fix,
      // named here, not found later by the runtime in the cache's copy.
      for (const name of TOKENIZER_FILES) {
        if (await Deno.stat(join(dir, name)).then(() => true, () => false)) await readJsonObject(join(dir, name));
      }
      const onnxDir = join(temp, "onnx");
      await Deno.mkdir(onnxDir);
      for (const file of checkpoint.files) await linkFile(join(dir, file), join(onnxDir, basename(file)));
      await checkInPlaceTensors(checkpoint, dtype);
      const converted = await convertTensors(checkpoint, join(onnxDir, STORAGE[dtype].file), dtype, options.onProgress);
      const model = buildDecoderGraph(checkpoint.config, checkpointWeights(checkpoint, converted, dtype));
      await Deno.writeFile(join(onnxDir, "model.onnx"), encodeModel(model));
      // A multimodal Gemma 3 config nests the decoder in text_config (with defaults left out); the runtime
      // and every reader of config.json want the decoder's own, as a gemma3_text checkpoint has it.
      const textOnly = checkpoint.rawConfig.model_type === "gemma3";
      for (const name of await regularFiles(dir)) {
        if (!name.endsWith(".safetensors") && !(textOnly && name === "config.json")) {
          await linkFile(join(dir, name), join(temp, name));
        }
      }
      if (textOnly) {
        await Deno.writeTextFile(join(temp, "config.json"), JSON.stringify(decoderConfigJson(checkpoint), null, 2));
      }
      return { source: dir, family: checkpoint.config.family, dtype, converted: [...converted.keys()] };
    },
  });
  return entry.dir;
}
