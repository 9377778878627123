/**
 * A model directory's identity. Two exports of one architecture can have byte-identical graphs and
 * differ only in their external weights, so a model's identity always covers its weight files, not
 * just its graph.
 *
 * @module
 */

import { join } from "node:path";
import { readUserFile } from "../io/files.ts";
import { decodeModel, externalDataLocations } from "../graph/onnx.ts";
import { type FileIdentity, fileIdentity, sha256Hex } from "../io/digest.ts";
import { memoByFile } from "../io/file_memo.ts";
import { contentIdentity, MODEL_SIDE_FILES } from "./content_identity.ts";

/**
 * The external data files (relative to the graph's directory) an ONNX graph names: decoded once per
 * change of the graph file and remembered, so neither the identity nor the WebGPU session loader
 * decodes a large graph on every run.
 */
export function externalDataFiles(graphPath: string): Promise<string[]> {
  return memoByFile(
    graphPath,
    "onnx-external-data",
    async (path) => externalDataLocations(decodeModel(await readUserFile(path, "model file"), path)),
  );
}

/** A model directory's identity: graph, every external data file it names, config and tokenizer. */
export interface ModelIdentity {
  /** Digest of the content alone: equal for the same model wherever it lies. */
  content: string;
  /** Digest of content, paths and modification times: for caches on this machine. */
  local: string;
}

/** The identity of the model in `dir` (transformers.js layout, graph `onnx/{modelFileName}.onnx`). */
export async function modelIdentity(dir: string, modelFileName = "model"): Promise<ModelIdentity> {
  const graphPath = join(dir, "onnx", `${modelFileName}.onnx`);
  const files: FileIdentity[] = [await fileIdentity(graphPath)];
  for (const location of await externalDataFiles(graphPath)) {
    files.push(await fileIdentity(join(dir, "onnx", location)));
  }
  for (const name of MODEL_SIDE_FILES) {
    const identity = await fileIdentity(join(dir, name)).catch(() => undefined);
    if (identity) files.push(identity);
  }
  const content = await contentIdentity(files.map((f) => ({ ...f, path: f.path.slice(dir.length) })));
  const local = await sha256Hex([content, JSON.stringify(files.map((f) => [f.path, f.mtimeMs]))]);
  return { content, local };
}
