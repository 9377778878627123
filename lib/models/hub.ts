/**
 * Model sources: a local directory (a Hugging Face checkpoint, or an ONNX export in transformers.js
 * layout) is used in place; a Hugging Face hub id is downloaded once (streamed to disk, never held in
 * memory) into a local cache, so graph building, rewriting and both runtimes work on local files.
 *
 * @module
 */

import { join, resolve } from "node:path";
import { UserError } from "../core/errors.ts";
import { isCheckpoint } from "./checkpoint.ts";
import { dirSource } from "../io/fs_source.ts";
import { externalDataLocations } from "../graph/onnx.ts";
import { readModel } from "../graph/onnx_file.ts";
import { modelDirFromCheckpoint } from "./from_checkpoint.ts";
import type { GraphDtype } from "./decoder_graph.ts";
import { ProgressBar } from "../io/progress.ts";
import { downloadFile, hubCacheDir, isHubId } from "../io/download.ts";

/** Files a causal LM needs besides its ONNX graph (the optional ones may be absent). */
const REQUIRED_FILES = ["config.json", "tokenizer.json", "tokenizer_config.json"];
const OPTIONAL_FILES = ["generation_config.json", "special_tokens_map.json", "chat_template.jinja"];

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
  if (!(await exists(join(dir, "onnx", `${modelFileName}.onnx`))) && await isCheckpoint(dirSource(dir))) {
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

export { modelShortName } from "./short_name.ts";
