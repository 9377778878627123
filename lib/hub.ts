/**
 * Model sources: a local directory (a Hugging Face checkpoint, or an ONNX export in transformers.js
 * layout) is used in place; a Hugging Face hub id is downloaded once (streamed to disk, never held in
 * memory) into a local cache, so graph building, rewriting and both runtimes work on local files.
 *
 * @module
 */

import { dirname, join, resolve } from "node:path";
import { UserError } from "./errors.ts";
import { isCheckpointDir } from "./checkpoint/checkpoint.ts";
import { externalDataLocations, readModel } from "./graph/onnx.ts";
import { modelDirFromCheckpoint } from "./models/from_checkpoint.ts";
import type { GraphDtype } from "./models/decoder_graph.ts";
import { writeJsonAtomic } from "./io/atomic.ts";
import { ProgressBar } from "./progress.ts";

/** Files a causal LM needs besides its ONNX graph (the optional ones may be absent). */
const REQUIRED_FILES = ["config.json", "tokenizer.json", "tokenizer_config.json"];
const OPTIONAL_FILES = ["generation_config.json", "special_tokens_map.json"];

/** True when `source` looks like a hub repository id (`org/name`) rather than a path. */
export function isHubId(source: string): boolean {
  return /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/.test(source);
}

/** Where hub downloads are kept (override with MODEL_DIFF_HUB_CACHE). */
export function hubCacheDir(): string {
  const home = Deno.env.get("HOME") ?? ".";
  return Deno.env.get("MODEL_DIFF_HUB_CACHE") ?? join(home, ".cache", "model-diff", "hub");
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

/**
 * The local directory of a model: `source` itself when it is a directory, else a hub id downloaded
 * into {@linkcode hubCacheDir}; for a Hugging Face checkpoint, the directory of its graph built at
 * `options.dtype` (default fp32). Checks that the files transformers.js needs are there.
 */
export async function resolveModelDir(
  source: string,
  options: { modelFileName?: string; dtype?: GraphDtype } = {},
): Promise<string> {
  const modelFileName = options.modelFileName ?? "model";
  const isDir = await Deno.stat(source).then((s) => s.isDirectory, () => false);
  let dir: string;
  if (isDir) dir = resolve(source);
  else if (isHubId(source) && !source.startsWith(".")) dir = await downloadFromHub(source, modelFileName);
  else throw new UserError(`model directory not found: ${source} (pass a local directory or a hub id like org/name)`);
  // A Hugging Face checkpoint (no ONNX graph): build the graph from config.json (cached).
  if (!(await exists(join(dir, "onnx", `${modelFileName}.onnx`))) && await isCheckpointDir(dir)) {
    let bar: ProgressBar | undefined;
    const dtype = options.dtype ?? "fp32";
    dir = await modelDirFromCheckpoint(dir, {
      dtype,
      log: (line) => console.error(line),
      onProgress: (done, total) => {
        bar ??= new ProgressBar(`converting weights to ${dtype}`, Math.ceil(total / 1e6), "MB");
        bar.update(Math.floor(done / 1e6));
        if (done === total) bar.finish();
      },
    });
  }
  for (const file of [...REQUIRED_FILES, `onnx/${modelFileName}.onnx`]) {
    if (!(await exists(join(dir, file)))) {
      throw new UserError(
        `${dir} has no ${file}: a model directory needs config.json and tokenizer files, and model.safetensors (a Hugging Face checkpoint) or onnx/${modelFileName}.onnx (an ONNX export in transformers.js layout)`,
      );
    }
  }
  return dir;
}

/**
 * Downloads the files of hub model `id` (skipping those already cached) and returns their directory:
 * a Hugging Face checkpoint (`model.safetensors`, or the shards its index names) when the repository
 * has one, else a transformers.js export's `onnx/` graph and its external data.
 */
async function downloadFromHub(id: string, modelFileName: string): Promise<string> {
  const revision = Deno.env.get("MODEL_DIFF_REVISION") ?? "main";
  const dir = join(hubCacheDir(), id, revision);
  for (const file of REQUIRED_FILES) await downloadFile(id, revision, file, dir, true);
  for (const file of OPTIONAL_FILES) await downloadFile(id, revision, file, dir, false);
  await downloadFile(id, revision, "model.safetensors.index.json", dir, false);
  const index = join(dir, "model.safetensors.index.json");
  if (await exists(index)) {
    const { weight_map: weightMap = {} } = JSON.parse(await Deno.readTextFile(index)) as {
      weight_map?: Record<string, string>;
    };
    for (const shard of new Set(Object.values(weightMap))) await downloadFile(id, revision, shard, dir, true);
    return dir;
  }
  await downloadFile(id, revision, "model.safetensors", dir, false);
  if (await exists(join(dir, "model.safetensors"))) return dir;
  const graph = `onnx/${modelFileName}.onnx`;
  await downloadFile(id, revision, graph, dir, true);
  const model = await readModel(join(dir, graph));
  for (const location of externalDataLocations(model)) await downloadFile(id, revision, `onnx/${location}`, dir, true);
  return dir;
}

/** Attempts per file: a dropped connection resumes from what arrived, this many times in one run. */
const DOWNLOAD_ATTEMPTS = 5;

/** What a partial download was fetched from, kept beside its `.part` file so a resume never mixes two files. */
interface PartInfo {
  url: string;
  /** A strong ETag the server gave (sent as If-Range: a changed file then comes back whole). */
  etag: string | null;
  /** The full size, when the server said. */
  size: number | null;
}

/**
 * Downloads `file` of hub repository `id` into `dir` unless present (404 is fine when not `required`).
 * Streams to `<file>.part` and renames when complete; a dropped connection resumes with an HTTP Range
 * request, within this run and in the next one (a server that ignores Range, or a file that changed,
 * restarts it cleanly). `HF_TOKEN` is sent as a Bearer token for gated repositories.
 */
export async function downloadFile(id: string, revision: string, file: string, dir: string, required: boolean) {
  const target = join(dir, file);
  if (await exists(target)) return;
  const endpoint = Deno.env.get("HF_ENDPOINT") ?? "https://huggingface.co";
  const url = `${endpoint}/${id}/resolve/${encodeURIComponent(revision)}/${file}`;
  const token = Deno.env.get("HF_TOKEN");
  const part = `${target}.part`;
  const infoPath = `${part}.json`;
  await Deno.mkdir(dirname(target), { recursive: true });
  for (let attempt = 1;; attempt++) {
    const info = await Deno.readTextFile(infoPath).then((s) => JSON.parse(s) as PartInfo, () => null);
    const partSize = await Deno.stat(part).then((s) => s.size, () => 0);
    const have = info?.url === url && (info.size === null || partSize <= info.size) ? partSize : 0;
    const headers: Record<string, string> = token ? { Authorization: `Bearer ${token}` } : {};
    if (have > 0) {
      headers.Range = `bytes=${have}-`;
      if (info?.etag) headers["If-Range"] = info.etag;
    }
    let response: Response;
    try {
      response = await fetch(url, { headers });
    } catch (error) {
      throw new UserError(
        `could not reach the Hugging Face hub for ${id} (${
          (error as Error).message.split("\n")[0]
        }): check the network (or HF_ENDPOINT), or pass a local model directory`,
      );
    }
    if (response.status === 416) {
      // What we have is not a prefix the server recognises: start over.
      await response.body?.cancel();
      await Deno.remove(part).catch(() => {});
      continue;
    }
    if (!response.ok) {
      await response.body?.cancel();
      if (!required && response.status === 404) return;
      if (response.status === 401 || response.status === 403) {
        throw new UserError(
          `${id} refused ${file} (HTTP ${response.status}): it is gated or private; ${
            token
              ? "HF_TOKEN was sent, so accept the model's licence on its hub page with that account"
              : "set HF_TOKEN"
          } (a token from https://huggingface.co/settings/tokens, after accepting the licence on the model's page)`,
        );
      }
      throw new UserError(
        `could not download ${file} of ${id} (HTTP ${response.status}): check the id and revision, or pass a local model directory`,
      );
    }
    const range = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(response.headers.get("content-range") ?? "");
    // 200 (Range ignored, or If-Range saw a changed file) means the whole file from byte 0.
    const start = response.status === 206 && range && Number(range[1]) === have ? have : 0;
    if (response.status === 206 && start !== have) {
      await response.body?.cancel();
      await Deno.remove(part).catch(() => {});
      continue;
    }
    const length = Number(response.headers.get("content-length") ?? NaN);
    const size = range && range[2] !== "*" ? Number(range[2]) : Number.isFinite(length) ? start + length : null;
    const etag = response.headers.get("etag");
    await writeJsonAtomic(infoPath, { url, etag: etag && !etag.startsWith("W/") ? etag : null, size });
    const received = await streamInto(response.body!, part, start, file, size);
    if (received.error) {
      if (attempt < DOWNLOAD_ATTEMPTS) {
        console.error(`connection lost during ${file} at ${(received.bytes / 1e6).toFixed(1)} MB; resuming`);
        continue;
      }
      throw new UserError(
        `the download of ${file} of ${id} kept failing (${received.error}): run again to resume from ${
          (received.bytes / 1e6).toFixed(1)
        } MB`,
      );
    }
    if (size !== null && received.bytes !== size) {
      await Deno.remove(part).catch(() => {});
      throw new UserError(`${file} of ${id} arrived with ${received.bytes} of ${size} bytes: run again`);
    }
    await Deno.rename(part, target);
    await Deno.remove(infoPath).catch(() => {});
    return;
  }
}

/**
 * Writes `body` into `path` from byte `start` (truncating what follows), with a progress bar in MB for
 * large files; returns the file's size afterwards and the error that ended the stream early, if any.
 */
async function streamInto(
  body: ReadableStream<Uint8Array>,
  path: string,
  start: number,
  label: string,
  size: number | null,
): Promise<{ bytes: number; error?: string }> {
  const out = await Deno.open(path, { write: true, create: true });
  await out.truncate(start);
  await out.seek(start, Deno.SeekMode.Start);
  // Weights are gigabytes: show MB/s and an ETA for anything large.
  const bar = size !== null && size > 16e6
    ? new ProgressBar(`downloading ${label}`, Math.ceil(size / 1e6), "MB", Math.floor(start / 1e6))
    : undefined;
  let bytes = start;
  try {
    for await (const chunk of body) {
      for (let written = 0; written < chunk.length;) written += await out.write(chunk.subarray(written));
      bytes += chunk.length;
      bar?.update(Math.floor(bytes / 1e6));
    }
  } catch (error) {
    return { bytes, error: (error as Error).message.split("\n")[0] };
  } finally {
    out.close();
  }
  bar?.finish();
  return { bytes };
}

/** The decoder's layer count and width from a model directory's config.json. */
export async function readModelShape(dir: string): Promise<{ layers: number; dModel: number; modelType: string }> {
  const config = JSON.parse(await Deno.readTextFile(join(dir, "config.json")));
  const layers = config.num_hidden_layers ?? config.n_layer ?? config.num_layers;
  const dModel = config.hidden_size ?? config.n_embd ?? config.d_model;
  if (!Number.isInteger(layers) || !Number.isInteger(dModel)) {
    throw new UserError(`${dir}/config.json does not give num_hidden_layers and hidden_size`);
  }
  return { layers, dModel, modelType: String(config.model_type ?? "") };
}

/** A short name for file names: the last path or id component, lower-cased (`gemma-2-9b-it`). */
export function modelShortName(source: string): string {
  const last = source.replace(/[\\/]+$/, "").split(/[\\/]/).at(-1) ?? source;
  return last.toLowerCase().replace(/[^a-z0-9._-]+/g, "-");
}
