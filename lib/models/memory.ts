/**
 * What a model asks of a GPU, estimated from its config.json alone, before a byte of its weights is
 * read: its parameters at the graph's precision (every tensor is stored on the GPU as the graph's
 * dtype: F32 for fp32, F16 for fp16), and its largest single tensor, which must fit in one GPU buffer
 * and be bound whole by the kernels that read it (`maxBufferSize`, `maxStorageBufferBindingSize`).
 * WebGPU says nothing of a device's total memory, so the buffer limits are what can be checked
 * up front; the total is said in the same line, for the user to weigh.
 *
 * @module
 */

import { UserError } from "../core/errors.ts";
import { type FileSource, readJsonObjectFrom } from "../core/file_source.ts";
import { type DecoderConfig, decoderConfigFromHf, parameterShapes } from "./config.ts";
import type { GraphDtype } from "./decoder_graph.ts";

/** Bytes each parameter takes on the GPU at a graph dtype. */
export const BYTES_PER_PARAMETER: Readonly<Record<GraphDtype, number>> = { fp32: 4, fp16: 2 };

/** A model's weights on the GPU. */
export interface ModelMemory {
  dtype: GraphDtype;
  /** Parameters the graph holds (tied embeddings counted once). */
  parameters: number;
  /** Their bytes at {@linkcode dtype}. */
  bytes: number;
  /** The largest single tensor, by Hugging Face name. */
  largest: { name: string; shape: number[]; bytes: number };
}

/** The buffer limits of a GPU device (`GPUDevice.limits`, as lib/backend/gpu_info.ts's Gpu holds them). */
export interface GpuBufferLimits {
  maxBufferSize: number;
  maxStorageBufferBindingSize: number;
}

/** The weights of a model of `config` at `dtype`. */
export function estimateModelMemory(config: DecoderConfig, dtype: GraphDtype): ModelMemory {
  const perParameter = BYTES_PER_PARAMETER[dtype];
  let parameters = 0;
  let largest: ModelMemory["largest"] = { name: "", shape: [], bytes: 0 };
  for (const [name, shape] of parameterShapes(config)) {
    const count = shape.reduce((a, b) => a * b, 1);
    parameters += count;
    if (count * perParameter > largest.bytes) largest = { name, shape, bytes: count * perParameter };
  }
  return { dtype, parameters, bytes: parameters * perParameter, largest };
}

/** `bytes` in binary units: "512 B", "256 MiB", "1.5 TiB". */
export function formatBinaryBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  const text = unit === 0 ? String(value) : value.toFixed(1).replace(/\.0$/, "");
  return `${text} ${units[unit]}`;
}

/** A parameter count as "405.9B", "16.6M", "12.3k" or "512". */
export function formatParameters(count: number): string {
  for (const [scale, suffix] of [[1e9, "B"], [1e6, "M"], [1e3, "k"]] as const) {
    if (count >= scale) return `${(count / scale).toFixed(1).replace(/\.0$/, "")}${suffix}`;
  }
  return String(count);
}

/**
 * Why a model of `memory` cannot run on a GPU of `limits`, in one line naming it as `label` (e.g.
 * "the base model org/name"), or undefined when its largest tensor fits.
 */
export function gpuMemoryProblem(label: string, memory: ModelMemory, limits: GpuBufferLimits): string | undefined {
  const [limitName, limit] = limits.maxStorageBufferBindingSize < limits.maxBufferSize
    ? ["maxStorageBufferBindingSize", limits.maxStorageBufferBindingSize]
    : ["maxBufferSize", limits.maxBufferSize];
  if (memory.largest.bytes <= limit) return undefined;
  const { name, shape, bytes } = memory.largest;
  return `${label} needs about ${formatBinaryBytes(memory.bytes)} of GPU memory at ${memory.dtype} (${
    formatParameters(memory.parameters)
  } parameters), and its largest tensor, ${name} [${shape.join(", ")}] (${
    formatBinaryBytes(bytes)
  }), is more than this GPU holds in one buffer (${limitName} ${
    formatBinaryBytes(limit)
  }): use a smaller model or a GPU with larger limits`;
}

/**
 * Reads the config.json in `files` (nothing else) and refuses, with a UserError in one line, a model
 * whose largest tensor at `dtype` does not fit `limits`; returns its estimate otherwise.
 */
export async function checkModelFitsGpu(
  files: FileSource,
  label: string,
  dtype: GraphDtype,
  limits: GpuBufferLimits,
): Promise<ModelMemory> {
  const config = decoderConfigFromHf(await readJsonObjectFrom(files, "config.json"), files.label("config.json"));
  const memory = estimateModelMemory(config, dtype);
  const problem = gpuMemoryProblem(label, memory, limits);
  if (problem) throw new UserError(problem);
  return memory;
}
