/**
 * Hugging Face checkpoints as they are downloaded: `config.json` plus `model.safetensors`, or shards
 * `model-0000k-of-0000n.safetensors` listed by `model.safetensors.index.json`
 * (`{"metadata": {...}, "weight_map": {tensor: file}}`). Only headers are read here; tensor bytes
 * stay on disk until the graph references them in place or a conversion reads them one at a time.
 *
 * @module
 */

import { UserError } from "../core/errors.ts";
import { type FileSource, readJsonObjectFrom } from "../core/file_source.ts";
import { type SafetensorsDtype, SafetensorsFile } from "../io/safetensors.ts";
import { type DecoderConfig, decoderConfigFromHf, parameterShapes } from "./config.ts";

const SINGLE = "model.safetensors";
const INDEX = "model.safetensors.index.json";

/** Float dtypes a checkpoint tensor may have. */
export const CHECKPOINT_DTYPES: readonly SafetensorsDtype[] = ["F32", "F16", "BF16"];

/** Where one tensor's bytes are. */
export interface CheckpointTensor {
  name: string;
  /** The safetensors file, relative to the checkpoint's folder. */
  file: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** Byte offset in the file (header included) and byte length. */
  offset: number;
  length: number;
}

/** An opened checkpoint: its config and where each tensor lies. */
export interface Checkpoint {
  /** The checkpoint's folder (on disk, or the files a page was given). */
  source: FileSource;
  /** How messages name the folder. */
  dir: string;
  config: DecoderConfig;
  /** config.json as written. */
  rawConfig: Record<string, unknown>;
  /** The safetensors files, relative to `dir`. */
  files: string[];
  tensors: Map<string, CheckpointTensor>;
}

async function exists(source: FileSource, path: string): Promise<boolean> {
  return await source.size(path) !== undefined;
}

/**
 * The decoder's name of a tensor in a multimodal Gemma 3 checkpoint (model_type "gemma3"), or
 * undefined for the vision tower and projector, which are not read. The released checkpoints keep the
 * decoder under `language_model.model.*` (and `language_model.lm_head`); transformers names the same
 * modules `model.language_model.*` and `lm_head` in memory (Gemma3ForConditionalGeneration's
 * `_checkpoint_conversion_mapping` in modeling_gemma3.py), so either is read.
 */
function gemma3DecoderName(stored: string): string | undefined {
  for (const prefix of ["language_model.model.", "model.language_model."]) {
    if (stored.startsWith(prefix)) return `model.${stored.slice(prefix.length)}`;
  }
  if (stored === "language_model.lm_head.weight" || stored === "lm_head.weight") return "lm_head.weight";
  return undefined;
}

/** True when `source` holds a Hugging Face checkpoint (config.json and safetensors weights). */
export async function isCheckpoint(source: FileSource): Promise<boolean> {
  return await exists(source, "config.json") &&
    (await exists(source, SINGLE) || await exists(source, INDEX));
}

/**
 * Opens the checkpoint in `source`: reads config.json and every safetensors header, and checks that
 * each tensor the architecture needs is there with the shape config.json implies and a float dtype.
 */
export async function openCheckpoint(source: FileSource): Promise<Checkpoint> {
  const dir = source.label("");
  const configPath = source.label("config.json");
  let rawConfig: Record<string, unknown>;
  try {
    rawConfig = JSON.parse(new TextDecoder().decode(await source.readAll("config.json", "config.json")));
  } catch (error) {
    if (error instanceof UserError) throw error;
    throw new UserError(`${configPath} cannot be read as JSON (${(error as Error).message.split("\n")[0]})`);
  }
  const config = decoderConfigFromHf(rawConfig, configPath);

  // Which file holds which tensor: the index for sharded checkpoints, else the one file's header.
  let weightMap: Map<string, string> | undefined;
  if (await exists(source, INDEX)) {
    const index = await readJsonObjectFrom(source, INDEX) as { weight_map?: Record<string, string> };
    if (!index.weight_map) throw new UserError(`${source.label(INDEX)} has no weight_map`);
    weightMap = new Map(Object.entries(index.weight_map));
  }
  const files = weightMap ? [...new Set(weightMap.values())].sort() : [SINGLE];
  const headers = new Map<string, SafetensorsFile>();
  for (const file of files) {
    if (!(await exists(source, file))) {
      throw new UserError(
        `${dir} is missing ${file}${weightMap ? ` (named by ${INDEX})` : ""}: download every shard of the checkpoint`,
      );
    }
    headers.set(file, await SafetensorsFile.read(source, file));
  }
  const tensors = new Map<string, CheckpointTensor>();
  const held = new Set<string>();
  const multimodal = rawConfig.model_type === "gemma3";
  for (const [file, header] of headers) {
    for (const [stored, info] of Object.entries(header.tensors)) {
      if (weightMap && weightMap.get(stored) !== file) continue;
      held.add(stored);
      const name = multimodal ? gemma3DecoderName(stored) : stored;
      if (name === undefined) continue;
      tensors.set(name, {
        name,
        file,
        dtype: info.dtype,
        shape: info.shape,
        offset: header.fileOffset(stored),
        length: info.data_offsets[1] - info.data_offsets[0],
      });
    }
  }
  if (weightMap) {
    for (const [name, file] of weightMap) {
      if (!held.has(name)) throw new UserError(`${INDEX} in ${dir} puts ${name} in ${file}, which does not hold it`);
    }
  }
  const shapes = parameterShapes(config);
  // Every stored tensor must be one config.json accounts for: 4-layer weights under a config saying 2
  // layers would otherwise run half the model. Tolerated: lm_head with tied embeddings (some exports
  // store the copy) and rotary inv_freq buffers older transformers saved (recomputed from config).
  const needed = new Set(shapes.map(([name]) => name));
  const leftovers = [...tensors.keys()].filter((name) =>
    !needed.has(name) && !/\.rotary_emb\.inv_freq$/.test(name) && name !== "lm_head.weight"
  );
  if (leftovers.length) {
    throw new UserError(
      `${dir} holds ${leftovers.length} tensor${leftovers.length === 1 ? "" : "s"} config.json does not account for (${
        leftovers.slice(0, 3).join(", ")
      }${
        leftovers.length > 3 ? ", …" : ""
      }): check config.json (num_hidden_layers ${config.numLayers}) against the weights`,
    );
  }
  for (const [name, shape] of shapes) {
    const tensor = tensors.get(name);
    if (!tensor) throw new UserError(`${dir} has no tensor ${name}, which a ${config.family} checkpoint needs`);
    if (!CHECKPOINT_DTYPES.includes(tensor.dtype)) {
      throw new UserError(
        `${name} has dtype ${tensor.dtype}; checkpoints must be ${
          CHECKPOINT_DTYPES.join(", ")
        } (quantised weights are not supported)`,
      );
    }
    if (tensor.shape.join() !== shape.join()) {
      throw new UserError(
        `${name} in ${tensor.file.split("/").pop()} has shape [${tensor.shape}] but config.json implies [${shape}]`,
      );
    }
  }
  return { source, dir, config, rawConfig, files, tensors };
}
