/**
 * Model loading: transformers.js on top of either onnxruntime-web's WebGPU backend running on Deno's
 * own `navigator.gpu` (`--device webgpu`) or onnxruntime-node on the CPU (`--device cpu`), both in
 * one process so results can be compared across backends. Models come from a local directory in
 * transformers.js layout or a Hugging Face hub id.
 *
 * transformers.js picks its ONNX runtime once, at import, from `globalThis[Symbol.for("onnxruntime")]`;
 * we install a small dispatcher there that routes each session to the runtime its execution providers
 * name, so this module must be imported (and transformers.js reached only through it) before anything
 * else touches transformers.js.
 *
 * @module
 */

import type * as Transformers from "@huggingface/transformers";
import * as ortNode from "onnxruntime-node";
import * as ortWeb from "onnxruntime-web/webgpu";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describeError, UserError } from "./errors.ts";
import { acquireGpu } from "./gpu.ts";
import { decodeModel, externalDataLocations } from "./graph/onnx.ts";

/** Where inference runs. */
export type Device = "webgpu" | "cpu";

/** The devices `--device` accepts. */
export const DEVICES: readonly Device[] = ["webgpu", "cpu"];

/** Parses a `--device` value. */
export function parseDevice(value: string): Device {
  if ((DEVICES as readonly string[]).includes(value)) return value as Device;
  throw new UserError(`unknown device "${value}": use --device webgpu or --device cpu`);
}

type SessionOptions = ortWeb.InferenceSession.SessionOptions;
type ExecutionProvider = NonNullable<SessionOptions["executionProviders"]>[number];

function providerNames(options: SessionOptions | undefined): string[] {
  return (options?.executionProviders ?? []).map((p: ExecutionProvider) => typeof p === "string" ? p : p.name);
}

/**
 * ORT-web fetches string paths and does not look for external data on its own: read the model and
 * every external data file it names from disk and hand both over as bytes.
 */
async function createWebGpuSession(source: string | Uint8Array, options: SessionOptions) {
  await acquireGpu();
  if (typeof source !== "string") return ortWeb.InferenceSession.create(source, options);
  const bytes = await readModelFile(source);
  const locations = externalDataLocations(decodeModel(bytes, source));
  const externalData = await Promise.all(
    locations.map(async (location) => ({ path: location, data: await readModelFile(join(dirname(source), location)) })),
  );
  return ortWeb.InferenceSession.create(bytes, { ...options, externalData });
}

async function readModelFile(path: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) throw new UserError(`model file not found: ${path}`);
    throw error;
  }
}

/** `instanceof` that accepts tensors of either runtime (transformers.js wraps outputs it recognises). */
class AnyOrtTensor {
  static [Symbol.hasInstance](value: unknown): boolean {
    return value instanceof ortWeb.Tensor || value instanceof ortNode.Tensor;
  }
}

const dispatcher = {
  ...ortWeb,
  Tensor: AnyOrtTensor,
  InferenceSession: {
    create(source: string | Uint8Array, options: SessionOptions) {
      if (providerNames(options).includes("webgpu")) return createWebGpuSession(source, options);
      const { executionProviders: _, ...rest } = options ?? {};
      return ortNode.InferenceSession.create(source as string, { ...rest, executionProviders: ["cpu"] });
    },
  },
};

// Local wasm files for ORT-web (it would otherwise fetch them from a CDN); one thread, as under Deno
// the wasm part only runs the few CPU-side ops.
ortWeb.env.wasm.wasmPaths = fileURLToPath(new URL("../node_modules/onnxruntime-web/dist/", import.meta.url));
ortWeb.env.wasm.numThreads = 1;
(globalThis as Record<symbol, unknown>)[Symbol.for("onnxruntime")] = dispatcher;
const transformers: typeof Transformers = await import("@huggingface/transformers");
transformers.env.logLevel = transformers.LogLevel.ERROR;

export { transformers };

/** A loaded causal language model and everything scripts need with it. */
export interface ModelHandle {
  /** What the user passed: a directory or a hub id. */
  source: string;
  /** The local directory the files were read from, when known. */
  localDir?: string;
  device: Device;
  config: Transformers.PretrainedConfig & Record<string, unknown>;
  tokenizer: Transformers.PreTrainedTokenizer;
  model: Transformers.PreTrainedModel;
  dispose(): Promise<void>;
}

/** Options of {@linkcode loadModel}. */
export interface LoadOptions {
  device: Device;
  /** ONNX file under `onnx/` without extension (default `model`). */
  modelFileName?: string;
  log?: (line: string) => void;
}

/** True when `source` names a Hugging Face hub repository rather than a local path. */
export function isHubId(source: string): boolean {
  return /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/.test(source) && !source.startsWith(".");
}

async function isDirectory(path: string): Promise<boolean> {
  return await Deno.stat(path).then((s) => s.isDirectory, () => false);
}

/** Checks a local model directory has what transformers.js needs, naming the first thing missing. */
async function checkModelDir(dir: string, modelFileName: string): Promise<void> {
  for (const file of ["config.json", "tokenizer.json", "tokenizer_config.json", `onnx/${modelFileName}.onnx`]) {
    const exists = await Deno.stat(join(dir, file)).then(() => true, () => false);
    if (!exists) {
      throw new UserError(
        `${dir} has no ${file}: a model directory needs config.json, tokenizer files and onnx/${modelFileName}.onnx (transformers.js layout, e.g. an Optimum export)`,
      );
    }
  }
}

/** Loads a causal LM with its tokenizer from a local directory or a hub id, on `device`. */
export async function loadModel(source: string, options: LoadOptions): Promise<ModelHandle> {
  const modelFileName = options.modelFileName ?? "model";
  const local = await isDirectory(source);
  if (!local && !isHubId(source)) {
    throw new UserError(`model directory not found: ${source} (pass a local directory or a hub id like org/name)`);
  }
  const localDir = local ? resolve(source) : undefined;
  if (localDir) await checkModelDir(localDir, modelFileName);
  if (options.device === "webgpu") await acquireGpu({ log: options.log });
  const id = localDir ?? source;
  transformers.env.allowLocalModels = true;
  transformers.env.allowRemoteModels = !local;
  const what = localDir ? `model in ${localDir}` : `model ${source} from the Hugging Face hub`;
  try {
    const tokenizer = await transformers.AutoTokenizer.from_pretrained(id);
    const model = await transformers.AutoModelForCausalLM.from_pretrained(id, {
      dtype: "fp32",
      // Under the dispatcher transformers.js knows no devices by name; the providers below decide.
      device: "auto",
      model_file_name: modelFileName,
      session_options: { executionProviders: [options.device === "webgpu" ? "webgpu" : "cpu"] },
    });
    const config = model.config as ModelHandle["config"];
    return {
      source,
      localDir,
      device: options.device,
      config,
      tokenizer,
      model,
      dispose: async () => {
        await model.dispose();
      },
    };
  } catch (error) {
    if (error instanceof UserError) throw error;
    throw new UserError(`could not load ${what}: ${describeError(error)}`);
  }
}

/** Resolves a path relative to the current directory unless absolute. */
export function absolutePath(path: string): string {
  return isAbsolute(path) ? path : resolve(path);
}
