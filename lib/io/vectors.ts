/**
 * Steering vectors from files: the sweep's `contrast_vectors.safetensors` (tensor `contrast.{L}`),
 * any safetensors file (a named tensor, or its only one), NumPy `.npy`, JSON (an array of numbers
 * or `{ "vector": [...] }`), or a llama.cpp control vector `.gguf` (its `direction.{layer}`).
 *
 * @module
 */

import { extname } from "node:path";
import { decodeControlVector } from "./control_vector.ts";
import { describeError, UserError } from "../core/errors.ts";
import { readUserFile } from "./files.ts";
import { assertFinite } from "./finite.ts";
import { decodeNpy } from "./npz.ts";
import { contrastTensorName } from "./vector_names.ts";
import { openSafetensors } from "./safetensors_file.ts";

/**
 * Loads a vector for `layer` from `path` (`name` picks a safetensors tensor); with `dModel`, one of
 * another width is a {@linkcode UserError}.
 */
export async function loadVector(
  path: string,
  options: { layer: number; dModel?: number; name?: string },
): Promise<Float32Array> {
  const extension = extname(path).toLowerCase();
  let vector: Float32Array;
  if (extension === ".safetensors") {
    const file = await openSafetensors(path);
    const names = Object.keys(file.tensors);
    const name = options.name ??
      (names.includes(contrastTensorName(options.layer))
        ? contrastTensorName(options.layer)
        : names.length === 1
        ? names[0]
        : undefined);
    if (!name) {
      throw new UserError(
        `${path} has no tensor ${
          contrastTensorName(options.layer)
        } (layer ${options.layer}); pass --vector-name, it has: ${names.slice(0, 8).join(", ")}`,
      );
    }
    vector = await file.float32(name);
  } else if (extension === ".npy") {
    vector = decodeNpy(await readBytes(path), path).data;
  } else if (extension === ".json") {
    let data: unknown;
    try {
      data = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(await readBytes(path)));
    } catch (error) {
      throw new UserError(
        `${path} is not valid JSON (${describeError(error)}): expected an array of numbers or {"vector": [...]}`,
      );
    }
    const values = Array.isArray(data) ? data : (data as { vector?: unknown } | null)?.vector;
    if (!Array.isArray(values) || values.some((x) => typeof x !== "number")) {
      throw new UserError(`${path} holds no vector: expected an array of numbers or {"vector": [...]}`);
    }
    vector = Float32Array.from(values);
  } else if (extension === ".gguf") {
    // A llama.cpp control vector: direction.{L} is the layer-L output's, as --layer L means here
    // (see lib/io/control_vector.ts for that convention in llama.cpp and repeng).
    const control = decodeControlVector(await readBytes(path), path);
    const direction = control.directions.get(options.layer);
    if (!direction) {
      throw new UserError(
        `${path} has no direction.${options.layer} (it has layers ${
          [...control.directions.keys()].join(", ")
        }): steer at one of those with --layer`,
      );
    }
    vector = direction;
  } else {
    throw new UserError(`unsupported vector file ${path}: use .safetensors, .npy, .json or .gguf`);
  }
  if (options.dModel !== undefined && vector.length !== options.dModel) {
    throw new UserError(
      `the vector in ${path} has ${vector.length} dimensions but the model has d_model ${options.dModel}: use a vector from this model`,
    );
  }
  assertFinite(vector, { file: path, tensor: "vector", fix: "use a vector of finite numbers" });
  return vector;
}

const readBytes = (path: string) => readUserFile(path, "vector file");
