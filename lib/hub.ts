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

/** Downloads `file` of hub repository `id` into `dir` unless present (404 is fine when not `required`). */
export async function downloadFile(id: string, revision: string, file: string, dir: string, required: boolean) {
  const target = join(dir, file);
  if (await exists(target)) return;
  const endpoint = Deno.env.get("HF_ENDPOINT") ?? "https://huggingface.co";
  const url = `${endpoint}/${id}/resolve/${encodeURIComponent(revision)}/${file}`;
  const token = Deno.env.get("HF_TOKEN");
  let response: Response;
  try {
    response = await fetch(url, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
  } catch (error) {
    throw new UserError(
      `could not download ${id} from the Hugging Face hub (${
        (error as Error).message.split("\n")[0]
      }): check the network, or pass a local model directory`,
    );
  }
  if (!response.ok) {
    await response.body?.cancel();
    if (!required && response.status === 404) return;
    throw new UserError(
      `could not download ${file} of ${id} (HTTP ${response.status}): check the id${
        response.status === 401 ? " and HF_TOKEN" : ""
      }, or pass a local model directory`,
    );
  }
  await Deno.mkdir(dirname(target), { recursive: true });
  const temp = `${target}.${Deno.pid}.download`;
  const out = await Deno.open(temp, { write: true, create: true, truncate: true });
  const size = Number(response.headers.get("content-length") ?? 0);
  // Weights are gigabytes: show MB/s and an ETA for anything large.
  const bar = size > 16e6 ? new ProgressBar(`downloading ${file}`, Math.ceil(size / 1e6), "MB") : undefined;
  let received = 0;
  const counter = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      received += chunk.length;
      bar?.update(Math.floor(received / 1e6));
      controller.enqueue(chunk);
    },
  });
  await response.body!.pipeThrough(counter).pipeTo(out.writable);
  bar?.finish();
  await Deno.rename(temp, target);
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
