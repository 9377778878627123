/**
 * What determines a piece of content, as one digest: every cache, checkpoint, shard and report is
 * keyed by it so a stale or foreign input is refused instead of silently reused. Two exports of one
 * architecture can have byte-identical graphs and differ only in their external weights, so a model's
 * identity always covers its weight files, not just its graph.
 *
 * @module
 */

import { join } from "node:path";
import { decodeModel, externalDataLocations } from "./graph/onnx.ts";
import type { Sae } from "./sae/config.ts";

/** Files at most this large are hashed whole; larger ones by evenly spaced samples. */
const WHOLE_FILE_BYTES = 64 * 1024 * 1024;
/** Samples of a large file: enough that any fine-tune (which changes most tensors) is told apart. */
const SAMPLES = 1024;
const SAMPLE_BYTES = 4096;

/** SHA-256 of the concatenated parts, as hex. */
export async function sha256Hex(parts: (Uint8Array | string)[]): Promise<string> {
  const chunks = parts.map((p) => (typeof p === "string" ? new TextEncoder().encode(p) : p));
  const total = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const chunk of chunks) {
    total.set(chunk, at);
    at += chunk.length;
  }
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", total));
  return [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** A file's content digest and where it lies (the latter only for machine-local caches). */
export interface FileIdentity {
  /** SHA-256 of the whole file, or of its size and {@linkcode SAMPLES} blocks spread over it. */
  digest: string;
  size: number;
  path: string;
  mtimeMs: number;
}

/** The identity of the file at `path`: whole-content hash up to 64 MiB, sampled beyond. */
export async function fileIdentity(path: string): Promise<FileIdentity> {
  const stat = await Deno.stat(path);
  const size = stat.size;
  const base = { size, path, mtimeMs: stat.mtime?.getTime() ?? 0 };
  if (size <= WHOLE_FILE_BYTES) return { ...base, digest: await sha256Hex([await Deno.readFile(path)]) };
  const file = await Deno.open(path);
  try {
    const parts: Uint8Array[] = [new TextEncoder().encode(`size:${size}`)];
    for (let i = 0; i <= SAMPLES; i++) {
      // The last sample ends at the end of the file, so a truncated or appended file always differs.
      const start = Math.min(size - SAMPLE_BYTES, Math.floor(i * (size - SAMPLE_BYTES) / SAMPLES));
      const block = new Uint8Array(SAMPLE_BYTES);
      await file.seek(start, Deno.SeekMode.Start);
      for (let read = 0; read < SAMPLE_BYTES;) {
        const n = await file.read(block.subarray(read));
        if (n === null) break;
        read += n;
      }
      parts.push(block);
    }
    return { ...base, digest: await sha256Hex(parts) };
  } finally {
    file.close();
  }
}

/** The files of a model directory that determine what it computes and how its text is tokenized. */
const MODEL_SIDE_FILES = ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"];

/** A model directory's identity: graph, every external data file it names, config and tokenizer. */
export interface ModelIdentity {
  /** Digest of the content alone: equal for the same model wherever it lies. */
  content: string;
  /** Digest of content, paths and modification times: for caches on this machine. */
  local: string;
  /** The graph file's bytes (already read, so callers need not read them again). */
  graph: Uint8Array;
}

/** The identity of the model in `dir` (transformers.js layout, graph `onnx/{modelFileName}.onnx`). */
export async function modelIdentity(dir: string, modelFileName = "model"): Promise<ModelIdentity> {
  const graphPath = join(dir, "onnx", `${modelFileName}.onnx`);
  const graph = await Deno.readFile(graphPath);
  const files: FileIdentity[] = [{
    ...(await Deno.stat(graphPath).then((s) => ({ size: s.size, mtimeMs: s.mtime?.getTime() ?? 0 }))),
    path: graphPath,
    digest: await sha256Hex([graph]),
  }];
  const locations = externalDataLocations(decodeModel(graph, graphPath));
  for (const location of locations) files.push(await fileIdentity(join(dir, "onnx", location)));
  for (const name of MODEL_SIDE_FILES) {
    const identity = await fileIdentity(join(dir, name)).catch(() => undefined);
    if (identity) files.push(identity);
  }
  const relative = (f: FileIdentity) => f.path.slice(dir.length);
  const content = await sha256Hex([JSON.stringify(files.map((f) => [relative(f), f.size, f.digest]))]);
  const local = await sha256Hex([content, JSON.stringify(files.map((f) => [f.path, f.mtimeMs]))]);
  return { content, local, graph };
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
  const { wEnc, bEnc, wDec, bDec, threshold } = sae;
  return sha256Hex([JSON.stringify(config), await sampledArrayDigest({ wEnc, bEnc, wDec, bDec, threshold })]);
}

/** A digest of the source text of `modules` (e.g. the code that produced a cached artefact). */
export async function codeDigest(modules: URL[]): Promise<string> {
  return sha256Hex(await Promise.all(modules.map((url) => Deno.readTextFile(url))));
}
