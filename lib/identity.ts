/**
 * What determines a piece of content, as one digest: every cache, checkpoint, shard and report is
 * keyed by it so a stale or foreign input is refused instead of silently reused. Two exports of one
 * architecture can have byte-identical graphs and differ only in their external weights, so a model's
 * identity always covers its weight files, not just its graph.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { join } from "node:path";
import { readUserFile } from "./errors.ts";
import { decodeModel, externalDataLocations } from "./graph/onnx.ts";
import { fileState, memoByFile } from "./io/file_memo.ts";
import type { Sae } from "./sae/config.ts";

/** Bytes read per step when hashing a file: large enough for throughput, small beside any model. */
const READ_BYTES = 8 * 1024 * 1024;

/** SHA-256 of the concatenated parts, as hex. */
export function sha256Hex(parts: (Uint8Array | string)[]): Promise<string> {
  // node:crypto streams without concatenating and hashes ~8x faster than crypto.subtle here.
  const hash = createHash("sha256");
  for (const part of parts) hash.update(part);
  return Promise.resolve(hash.digest("hex"));
}

/** A file's content digest and where it lies (the latter only for machine-local caches). */
export interface FileIdentity {
  /** SHA-256 of the whole file. */
  digest: string;
  size: number;
  path: string;
  mtimeMs: number;
}

/** SHA-256 of every byte of the file at `path`, read in steps. */
async function hashFile(path: string): Promise<string> {
  const hash = createHash("sha256");
  const file = await Deno.open(path);
  try {
    const buffer = new Uint8Array(READ_BYTES);
    for (let n = await file.read(buffer); n !== null; n = await file.read(buffer)) hash.update(buffer.subarray(0, n));
  } finally {
    file.close();
  }
  return hash.digest("hex");
}

/**
 * The identity of the file at `path`: a hash of all of its bytes, so any changed byte changes it. The
 * file is read once per change (lib/io/file_memo.ts): a warm start only stats it.
 */
export async function fileIdentity(path: string): Promise<FileIdentity> {
  const state = await fileState(path);
  const digest = await memoByFile(path, "sha256", hashFile);
  return { digest, size: state.size, path, mtimeMs: state.mtimeMs };
}

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

/** The files of a model directory that determine what it computes and how its text is tokenized. */
const MODEL_SIDE_FILES = ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"];

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
  const relative = (f: FileIdentity) => f.path.slice(dir.length);
  const content = await sha256Hex([JSON.stringify(files.map((f) => [relative(f), f.size, f.digest]))]);
  const local = await sha256Hex([content, JSON.stringify(files.map((f) => [f.path, f.mtimeMs]))]);
  return { content, local };
}

/** A digest of typed arrays by a fixed stride of their elements (plus lengths): cheap for GiB-sized SAEs. */
export async function sampledArrayDigest(arrays: Record<string, Float32Array>, stride = 997): Promise<string> {
  const parts: string[] = [];
  for (const [name, data] of Object.entries(arrays)) {
    const picked = new Float32Array(Math.ceil(data.length / stride) + 1);
    let k = 0;
    for (let i = 0; i < data.length; i += stride) picked[k++] = data[i];
    picked[k] = data[data.length - 1] ?? 0;
    parts.push(`${name}:${data.length}:${await sha256Hex([new Uint8Array(picked.buffer)])}`);
  }
  return sha256Hex([parts.join(";")]);
}

/** An SAE's identity: its configuration (what it computes) and a sampled digest of its weights. */
export async function saeIdentity(sae: Sae): Promise<string> {
  const { source: _, ...config } = sae.config;
  const { wEnc, bEnc, wDec, bDec, threshold, magnitude } = sae;
  const arrays: Record<string, Float32Array> = { wEnc, bEnc, wDec, bDec, threshold };
  if (magnitude) Object.assign(arrays, { magnitudeScale: magnitude.scale, magnitudeBias: magnitude.bias });
  return sha256Hex([JSON.stringify(config), await sampledArrayDigest(arrays)]);
}

/** A digest of the source text of `modules` (e.g. the code that produced a cached artefact). */
export async function codeDigest(modules: URL[]): Promise<string> {
  return sha256Hex(await Promise.all(modules.map((url) => Deno.readTextFile(url))));
}
