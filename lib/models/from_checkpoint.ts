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
import { cacheEntry, cacheRoot } from "../io/cache_store.ts";
import { codeDigest, fileIdentity, sha256Hex } from "../io/digest.ts";
import { dirSource } from "../io/fs_source.ts";
import { linkFile, regularFiles, writeRange } from "../io/files.ts";
import { readJsonObject } from "../io/json.ts";
import {
  checkInPlaceTensors,
  checkpointGraph,
  type ConversionProgress,
  convertedFileName,
  convertTensors,
  runtimeConfigJson,
} from "./checkpoint_graph.ts";
import type { GraphDtype } from "./decoder_graph.ts";

export type { ConversionProgress };

/** Where graphs built from checkpoints are kept (override with MODEL_DIFF_CHECKPOINT_CACHE). */
export function checkpointCacheRoot(): string {
  return cacheRoot("checkpoint");
}

/** The modules whose code determines the built graph (part of the cache key). */
const BUILD_SOURCES = [
  "./from_checkpoint.ts",
  "./checkpoint_graph.ts",
  "./decoder_graph.ts",
  "./config.ts",
  "./checkpoint.ts",
  "../graph/builder.ts",
  "../graph/onnx.ts",
];

/** Tokenizer files a checkpoint folder brings (each must be a JSON object when present). */
const TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json"];

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
 * The transformers.js-layout directory for the checkpoint in `dir` at precision `dtype` (default
 * fp32): graph built and weights converted on first use, then cached. Bad checkpoints are refused in
 * one line; nothing is left half-written in the cache.
 */
export async function modelDirFromCheckpoint(
  dir: string,
  options: { dtype?: GraphDtype; log?: (line: string) => void; onProgress?: ConversionProgress } = {},
): Promise<string> {
  const dtype = options.dtype ?? "fp32";
  const checkpoint = await openCheckpoint(dirSource(dir));
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
      const out = await Deno.open(join(onnxDir, convertedFileName(dtype)), { write: true, create: true });
      const converted = await convertTensors(
        checkpoint,
        dtype,
        { write: (offset, bytes) => writeRange(out, offset, bytes) },
        options.onProgress,
      ).finally(() => out.close());
      if (!converted.size) await Deno.remove(join(onnxDir, convertedFileName(dtype)));
      await Deno.writeFile(join(onnxDir, "model.onnx"), checkpointGraph(checkpoint, converted, dtype));
      // The runtime and every reader of config.json want the decoder's own config (see runtimeConfigJson).
      const textOnly = checkpoint.rawConfig.model_type === "gemma3";
      for (const name of await regularFiles(dir)) {
        if (!name.endsWith(".safetensors") && !(textOnly && name === "config.json")) {
          await linkFile(join(dir, name), join(temp, name));
        }
      }
      if (textOnly) {
        await Deno.writeTextFile(join(temp, "config.json"), JSON.stringify(runtimeConfigJson(checkpoint), null, 2));
      }
      return { source: dir, family: checkpoint.config.family, dtype, converted: [...converted.keys()] };
    },
  });
  return entry.dir;
}
