/**
 * A Hugging Face checkpoint made runnable from its files alone (a folder a page was given, or any
 * {@linkcode FileSource}): its graph built and its non-native tensors converted in memory, and the
 * content identity the CLI gives the same checkpoint's built directory (lib/models/identity.ts), so a
 * run's fingerprint is the same wherever it ran.
 *
 * @module
 */

import type { ByteStore } from "../core/byte_store.ts";
import type { FileSource } from "../core/file_source.ts";
import { sha256Hex, sha256OfFile } from "../core/sha256.ts";
import { decodeModel, externalDataLocations } from "../graph/onnx.ts";
import { type Checkpoint, openCheckpoint } from "./checkpoint.ts";
import {
  checkInPlaceTensors,
  checkpointGraph,
  type ConversionProgress,
  convertedFileName,
  convertTensors,
  runtimeConfigJson,
} from "./checkpoint_graph.ts";
import { contentIdentity, type HashedFile, MODEL_SIDE_FILES } from "./content_identity.ts";
import type { GraphDtype } from "./decoder_graph.ts";

/** A checkpoint's graph and converted weights, built in memory, with the model's identity. */
export interface BuiltModel {
  /** The checkpoint's files. */
  files: FileSource;
  checkpoint: Checkpoint;
  dtype: GraphDtype;
  /** The encoded ONNX graph; its external data names the checkpoint's safetensors files and {@linkcode convertedFile}. */
  graph: Uint8Array;
  /** The name the graph gives the converted tensors' file, and its bytes (absent when nothing was converted). */
  convertedFile: string;
  converted?: Uint8Array;
  /** config.json as the runtime reads it (a multimodal Gemma 3's decoder config written out). */
  configText: string;
  /** Content identity, equal to the CLI's for the same checkpoint and dtype. */
  identity: string;
}

/** A growing byte buffer the conversion writes into. */
function memorySink() {
  let bytes = new Uint8Array(0);
  let length = 0;
  return {
    write(offset: number, chunk: Uint8Array): Promise<void> {
      const end = offset + chunk.length;
      if (end > bytes.length) {
        const grown = new Uint8Array(Math.max(end, bytes.length * 2));
        grown.set(bytes.subarray(0, length));
        bytes = grown;
      }
      bytes.set(chunk, offset);
      length = Math.max(length, end);
      return Promise.resolve();
    },
    bytes: () => bytes.slice(0, length),
  };
}

/** Where built models are kept between runs (a page's origin-private storage), and the building code's version. */
export interface BuildCache {
  store: ByteStore;
  /** Changes whenever the code that builds (or the bundle holding it) does. */
  version: string;
}

/** Files besides the weights that a built model depends on. */
const BUILD_INPUTS = ["config.json", "model.safetensors.index.json", ...MODEL_SIDE_FILES, "special_tokens_map.json"];

/**
 * The cache key of `checkpoint` built at `dtype`: every file it is built from by path, size and
 * modification time, the precision and the code's version; undefined when `files` cannot stamp files
 * cheaply (then nothing is cached).
 */
async function buildKey(checkpoint: Checkpoint, dtype: GraphDtype, version: string): Promise<string | undefined> {
  const { source } = checkpoint;
  if (!source.stamp) return undefined;
  const stamps: [string, string][] = [];
  for (const name of [...new Set([...checkpoint.files, ...BUILD_INPUTS])]) {
    const stamp = await source.stamp(name);
    if (stamp !== undefined) stamps.push([name, stamp]);
    else if (checkpoint.files.includes(name)) return undefined;
  }
  return (await sha256Hex([JSON.stringify({ stamps, dtype, version })])).slice(0, 32);
}

async function fromCache(cache: BuildCache, key: string, checkpoint: Checkpoint, dtype: GraphDtype) {
  // The metadata is written last, so its presence says the other parts are whole.
  const meta = await cache.store.get(`${key}.meta`);
  if (!meta) return undefined;
  const { identity, configText, convertedFile, hasConverted } = JSON.parse(new TextDecoder().decode(meta));
  const graph = await cache.store.get(`${key}.graph`);
  const converted = hasConverted ? await cache.store.get(`${key}.converted`) : undefined;
  if (!graph || (hasConverted && !converted)) return undefined;
  return { files: checkpoint.source, checkpoint, dtype, graph, convertedFile, converted, configText, identity };
}

async function toCache(cache: BuildCache, key: string, built: BuiltModel): Promise<void> {
  await cache.store.put(`${key}.graph`, built.graph);
  if (built.converted) await cache.store.put(`${key}.converted`, built.converted);
  const meta = {
    identity: built.identity,
    configText: built.configText,
    convertedFile: built.convertedFile,
    hasConverted: built.converted !== undefined,
  };
  await cache.store.put(`${key}.meta`, new TextEncoder().encode(JSON.stringify(meta)));
}

/**
 * Builds the checkpoint in `files` at `dtype`: headers checked, tensors used in place checked finite,
 * the others converted, the graph built, and the identity computed (hashing every weight file whole,
 * as the CLI does once per file change). With a `cache`, a checkpoint built before (same files by
 * size and modification time, same precision, same code) is read back instead, and a new build is kept.
 */
export async function buildModel(
  files: FileSource,
  dtype: GraphDtype,
  options: { onProgress?: ConversionProgress; cache?: BuildCache; log?: (line: string) => void } = {},
): Promise<BuiltModel> {
  const checkpoint = await openCheckpoint(files);
  const key = options.cache && await buildKey(checkpoint, dtype, options.cache.version);
  if (options.cache && key) {
    const cached = await fromCache(options.cache, key, checkpoint, dtype);
    if (cached) {
      options.log?.(`using the ${dtype} graph of ${files.label("")} built before (cache ${key})`);
      return cached;
    }
  }
  const built = await build(checkpoint, dtype, options.onProgress);
  if (options.cache && key) await toCache(options.cache, key, built);
  return built;
}

async function build(checkpoint: Checkpoint, dtype: GraphDtype, onProgress?: ConversionProgress): Promise<BuiltModel> {
  const files = checkpoint.source;
  await checkInPlaceTensors(checkpoint, dtype);
  const sink = memorySink();
  const placed = await convertTensors(checkpoint, dtype, sink, onProgress);
  const converted = placed.size ? sink.bytes() : undefined;
  const graph = checkpointGraph(checkpoint, placed, dtype);
  const textOnly = checkpoint.rawConfig.model_type === "gemma3";
  const configText = textOnly
    ? JSON.stringify(runtimeConfigJson(checkpoint), null, 2)
    : new TextDecoder().decode(await files.readAll("config.json", "config.json"));
  const convertedFile = convertedFileName(dtype);
  const hashed: HashedFile[] = [{ path: "/onnx/model.onnx", size: graph.length, digest: await sha256Hex([graph]) }];
  for (const location of externalDataLocations(decodeModel(graph, "the built graph"))) {
    const path = `/onnx/${location}`;
    if (location === convertedFile) {
      hashed.push({ path, size: converted!.length, digest: await sha256Hex([converted!]) });
    } else {
      hashed.push({ path, size: (await files.size(location))!, digest: await sha256OfFile(files, location) });
    }
  }
  for (const name of MODEL_SIDE_FILES) {
    if (name === "config.json" && textOnly) {
      const bytes = new TextEncoder().encode(configText);
      hashed.push({ path: "/config.json", size: bytes.length, digest: await sha256Hex([bytes]) });
      continue;
    }
    const size = await files.size(name);
    if (size !== undefined) hashed.push({ path: `/${name}`, size, digest: await sha256OfFile(files, name) });
  }
  return {
    files,
    checkpoint,
    dtype,
    graph,
    convertedFile,
    converted,
    configText,
    identity: await contentIdentity(hashed),
  };
}
