/**
 * llama.cpp control vectors (GGUF): what `llama-cli --control-vector FILE` and Ollama read and repeng
 * writes and reads. The file holds `general.architecture = "controlvector"`,
 * `controlvector.model_hint` (repeng writes the model's `config.model_type`) and
 * `controlvector.layer_count` (repeng: the number of directions), and one F32 tensor `direction.{L}`
 * of d_model values per layer (vgel/repeng, repeng/extract.py at 0ba7196d, `export_gguf`, lines
 * 137-142).
 *
 * Layer numbering: `direction.{L}` is added to the output of decoder block L (0-based), the same
 * residual stream this toolkit calls "after layer L" (`resid_post` L, Hugging Face
 * `hidden_states[L + 1]`), so a vector steered at `--layer L` is exported as `direction.L` unchanged:
 * - llama.cpp's model graphs add the control vector to each block's output: `cur = build_cvec(cur, il);
 *   cb(cur, "l_out", il);` after the block's second residual add (e.g. src/models/llama.cpp), and
 *   `llama_adapter_cvec::apply_to` adds `tensor_for(il)` (src/llama-adapter.cpp at 0650ea8c, line 25);
 * - its loader puts `direction.{L}` at `data[n_embd * (L - 1)]` ("layer 1 at [0]") and `apply` copies
 *   that to `tensors[L]` (`off = n_embd * (il - 1)`), so the file's L is the graph's il (common/common.cpp,
 *   `common_control_vector_load_one`; src/llama-adapter.cpp `apply`);
 * - layer 0 never gets one: "there's never a tensor for layer 0" (src/llama-adapter.cpp line 65), and
 *   the loader refuses the whole file on "invalid (zero) direction tensor layer index", so we refuse to
 *   write `direction.0`;
 * - repeng's keys are indices into `model.model.layers` whose outputs it reads as `hidden_states[layer + 1]`
 *   (repeng/extract.py line 382) and whose outputs it controls (`layers[layer_id] = ControlModule(layer)`,
 *   repeng/control.py line 35).
 *
 * @module
 */

import { readUserFile } from "./files.ts";
import { UserError } from "../core/errors.ts";
import { writeFileAtomic } from "./atomic.ts";
import { decodeGguf, encodeGguf, GGML_TYPE_F32, ggufFloat32 } from "./gguf.ts";

/** The GGUF architecture of a control vector. */
export const CONTROL_VECTOR_ARCH = "controlvector";

/** A control vector: one direction per layer. */
export interface ControlVector {
  /** What repeng writes as `controlvector.model_hint`: the model's `model_type` (e.g. `llama`, `gemma2`). */
  modelHint: string;
  /** Directions by layer (the block whose output they are added to), ascending. */
  directions: Map<number, Float32Array>;
}

/** Tensor name of the direction of `layer`. */
export function directionName(layer: number): string {
  return `direction.${layer}`;
}

/** Encodes a control vector as GGUF v3; layer 0, mixed widths or non-finite values are {@linkcode UserError}s. */
export function encodeControlVector(vector: ControlVector): Uint8Array {
  const layers = [...vector.directions.keys()].sort((a, b) => a - b);
  if (layers.length === 0) throw new UserError("a control vector needs at least one layer");
  const width = vector.directions.get(layers[0])!.length;
  for (const layer of layers) {
    if (!Number.isInteger(layer) || layer < 0) throw new UserError(`layer ${layer} is not a layer index`);
    if (layer === 0) {
      throw new UserError(
        "llama.cpp applies no control vector after layer 0 and rejects a file with direction.0: steer at layer 1 or later",
      );
    }
    const direction = vector.directions.get(layer)!;
    if (direction.length !== width) {
      throw new UserError(`direction.${layer} has ${direction.length} values, not ${width}`);
    }
    if (direction.some((x) => !Number.isFinite(x))) {
      throw new UserError(`direction.${layer} has NaN or infinite values`);
    }
  }
  return encodeGguf(
    [
      ["general.architecture", { type: "string", value: CONTROL_VECTOR_ARCH }],
      [`${CONTROL_VECTOR_ARCH}.model_hint`, { type: "string", value: vector.modelHint }],
      [`${CONTROL_VECTOR_ARCH}.layer_count`, { type: "uint32", value: layers.length }],
    ],
    layers.map((layer) => ({ name: directionName(layer), dims: [width], data: vector.directions.get(layer)! })),
  );
}

/** Writes `vector` to `path` atomically. */
export async function writeControlVector(path: string, vector: ControlVector): Promise<void> {
  await writeFileAtomic(path, encodeControlVector(vector));
}

/**
 * Reads a control vector from GGUF bytes, as llama.cpp's loader accepts them: architecture
 * `controlvector`, tensors `direction.{L}`, 1-D F32, all one width. Anything else is one line.
 */
export function decodeControlVector(bytes: Uint8Array, what: string): ControlVector {
  const file = decodeGguf(bytes, what);
  const arch = file.metadata.get("general.architecture");
  if (arch?.type !== "string" || arch.value !== CONTROL_VECTOR_ARCH) {
    throw new UserError(
      `${what} is a GGUF of architecture ${
        arch?.type === "string" ? arch.value : "(none)"
      }, not a llama.cpp control vector (general.architecture = controlvector)`,
    );
  }
  const hint = file.metadata.get(`${CONTROL_VECTOR_ARCH}.model_hint`);
  const directions = new Map<number, Float32Array>();
  let width: number | undefined;
  for (const info of file.tensors) {
    const match = /^direction\.(\d+)$/.exec(info.name);
    if (!match) throw new UserError(`${what} has tensor ${info.name}; a control vector has only direction.{layer}`);
    if (info.type !== GGML_TYPE_F32 || info.dims.length !== 1) {
      throw new UserError(`${what}: ${info.name} is not a 1-D F32 tensor`);
    }
    width ??= info.dims[0];
    if (info.dims[0] !== width) {
      throw new UserError(`${what}: ${info.name} has ${info.dims[0]} values, others ${width}`);
    }
    // llama.cpp adds directions named twice (`dst[j] += src[j] * strength`); so do we.
    const layer = Number(match[1]);
    const data = ggufFloat32(file, info, what);
    const previous = directions.get(layer);
    if (previous) { for (let i = 0; i < data.length; i++) data[i] += previous[i]; }
    directions.set(layer, data);
  }
  if (directions.size === 0) throw new UserError(`${what} holds no direction tensors`);
  return {
    modelHint: hint?.type === "string" ? hint.value : "",
    directions: new Map([...directions].sort(([a], [b]) => a - b)),
  };
}

/** Reads the control vector at `path`. */
export async function readControlVector(path: string): Promise<ControlVector> {
  return decodeControlVector(await readUserFile(path, "control vector"), path);
}
