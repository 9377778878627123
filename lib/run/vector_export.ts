/**
 * Steering vectors out of the toolkit, as llama.cpp control vectors (`deno task vector`): from the
 * sweep's contrast vectors (one layer, several, or all), an ADL file (`adl.{position}` at the layer its
 * metadata names), any vector file at a given layer, or an SAE feature's decoder direction, with the
 * steering magnitude folded in or left to llama.cpp's `--control-vector-scaled FILE SCALE`.
 *
 * @module
 */

import { extname, join } from "node:path";
import { type ControlVector, writeControlVector } from "../io/control_vector.ts";
import { UserError } from "../core/errors.ts";
import { downloadFile, hubCacheDir, isHubId } from "../io/download.ts";
import { readModelShape } from "../models/hub.ts";
import { openSafetensors } from "../io/safetensors_file.ts";
import { loadSae } from "../sae/load.ts";
import { featureDirection } from "../sae/feature_direction.ts";
import { contrastTensorName } from "../io/vector_names.ts";
import { loadVector } from "../io/vectors.ts";

/** Where the vector comes from. */
export type VectorSource =
  | { kind: "file"; path: string; name?: string }
  | { kind: "sae"; sae: string; feature: number };

/** What the control vector is for: the model's type (the hint), width and depth. */
export interface ModelShape {
  modelType: string;
  dModel: number;
  layers: number;
}

/** Options of {@linkcode exportControlVector}. */
export interface ExportOptions {
  source: VectorSource;
  /** The .gguf file to write. */
  out: string;
  /** Layers to export; default: the one the source names (an ADL file's, an SAE's hook layer). */
  layers?: number[] | "all";
  /** Multiplied into every direction, so llama.cpp at strength 1 steers as `steer --mag` would. */
  magnitude?: number;
  /** The model the vector is for: checks width and layers, and gives the hint. */
  model?: ModelShape;
  /** `controlvector.model_hint` (default: the model's `model_type`, as repeng writes it). */
  modelHint?: string;
}

/** What was written. */
export interface ExportResult {
  out: string;
  layers: number[];
  width: number;
  modelHint: string;
}

/**
 * The width, depth and `model_type` of a model directory or hub id, from its config.json alone (a hub
 * model's config.json is downloaded, nothing else).
 */
export async function modelShapeOf(source: string): Promise<ModelShape> {
  const isDir = await Deno.stat(source).then((s) => s.isDirectory, () => false);
  if (isDir) return await readModelShape(source);
  if (!isHubId(source) || source.startsWith(".")) throw new UserError(`model directory not found: ${source}`);
  const dir = join(hubCacheDir(), source, "main");
  await downloadFile(source, "main", "config.json", dir, true);
  return await readModelShape(dir);
}

function single(layers: number[] | "all" | undefined, what: string, fallback?: number): number {
  if (layers === "all" || (layers && layers.length !== 1)) {
    throw new UserError(`${what} is one vector: pass one --layer`);
  }
  const layer = layers?.[0] ?? fallback;
  if (layer === undefined) throw new UserError(`${what} names no layer: pass --layer L (the layer it steers after)`);
  return layer;
}

/** The directions a source gives, by layer. */
async function directionsOf(options: ExportOptions): Promise<Map<number, Float32Array>> {
  const { source, layers } = options;
  if (source.kind === "sae") {
    const sae = await loadSae(source.sae, { dModel: options.model?.dModel });
    // W_dec[feature], as the page's steering panel takes it (lib/sae/feature_direction.ts).
    const direction = featureDirection(sae, source.feature);
    const layer = single(layers, `feature ${source.feature} of ${source.sae}`, sae.config.hookLayer);
    return new Map([[layer, direction]]);
  }
  const { path, name } = source;
  if (extname(path).toLowerCase() === ".safetensors") {
    const file = await openSafetensors(path);
    const names = Object.keys(file.tensors);
    const meta = file.metadata.metadata ? JSON.parse(file.metadata.metadata) as { layer?: unknown } : {};
    if (file.metadata.format?.startsWith("model-diff/adl/") && !name) {
      const adl = names.filter((n) => n.startsWith("adl."));
      if (adl.length !== 1) {
        throw new UserError(`${path} is an ADL file: pick a position with --vector-name (${adl.join(", ")})`);
      }
    }
    const contrast = names.filter((n) => /^contrast\.\d+$/.test(n)).map((n) => Number(n.slice(9))).sort((a, b) =>
      a - b
    );
    if (!name && contrast.length > 0) {
      if (!layers) {
        throw new UserError(
          `${path} has contrast vectors for layers ${contrast.join(", ")}: pass --layer L, a list or all`,
        );
      }
      const chosen = layers === "all" ? contrast : layers;
      const out = new Map<number, Float32Array>();
      for (const layer of chosen) {
        if (!contrast.includes(layer)) {
          throw new UserError(`${path} has no ${contrastTensorName(layer)} (layers ${contrast.join(", ")})`);
        }
        out.set(layer, await file.float32(contrastTensorName(layer)));
      }
      return out;
    }
    // An ADL file records its layer; any other file needs --layer.
    const layer = single(layers, path, typeof meta.layer === "number" ? meta.layer : undefined);
    if (typeof meta.layer === "number" && meta.layer !== layer) {
      throw new UserError(`${path} holds layer ${meta.layer}'s vectors, not layer ${layer}'s`);
    }
    return new Map([[layer, await loadVector(path, { layer, name })]]);
  }
  const layer = single(layers, path);
  return new Map([[layer, await loadVector(path, { layer, name })]]);
}

/** Writes the source's directions to `options.out` as a llama.cpp control vector. */
export async function exportControlVector(options: ExportOptions): Promise<ExportResult> {
  const directions = await directionsOf(options);
  const model = options.model;
  const modelHint = options.modelHint ?? model?.modelType;
  if (!modelHint) {
    throw new UserError(
      "pass --model (its config's model_type becomes controlvector.model_hint, as repeng writes it) or --model-hint",
    );
  }
  let width = 0;
  for (const [layer, direction] of directions) {
    width = direction.length;
    if (model && direction.length !== model.dModel) {
      throw new UserError(`the vector has ${direction.length} dimensions but the model has d_model ${model.dModel}`);
    }
    if (model && layer >= model.layers) {
      throw new UserError(`layer ${layer} is out of range: the model has layers 0..${model.layers - 1}`);
    }
    if (options.magnitude !== undefined) {
      // f32(c · v): the same product the steering graph computes for --mag c, so llama.cpp at
      // strength 1 adds exactly what `steer --mag c` adds.
      const m = Math.fround(options.magnitude);
      directions.set(layer, direction.map((x) => x * m));
    }
  }
  const vector: ControlVector = { modelHint, directions };
  await writeControlVector(options.out, vector);
  return { out: options.out, layers: [...directions.keys()].sort((a, b) => a - b), width, modelHint };
}
