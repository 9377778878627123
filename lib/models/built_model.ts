/**
 * A Hugging Face checkpoint made runnable from its files alone (a folder a page was given, or any
 * {@linkcode FileSource}): its graph built and its non-native tensors converted in memory, and the
 * content identity the CLI gives the same checkpoint's built directory (lib/models/identity.ts), so a
 * run's fingerprint is the same wherever it ran.
 *
 * @module
 */

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

/**
 * Builds the checkpoint in `files` at `dtype`: headers checked, tensors used in place checked finite,
 * the others converted, the graph built, and the identity computed (hashing every weight file whole,
 * as the CLI does once per file change).
 */
export async function buildModel(
  files: FileSource,
  dtype: GraphDtype,
  options: { onProgress?: ConversionProgress } = {},
): Promise<BuiltModel> {
  const checkpoint = await openCheckpoint(files);
  await checkInPlaceTensors(checkpoint, dtype);
  const sink = memorySink();
  const placed = await convertTensors(checkpoint, dtype, sink, options.onProgress);
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
