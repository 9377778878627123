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
import { join } from "node:path";
import { describeError, UserError } from "../core/errors.ts";
import { acquireGpu } from "../backend/gpu.ts";
import { defaultGraphDtype } from "../backend/gpu_info.ts";
import { ortWeb } from "../backend/ort_web.ts";
import { rewrittenModel } from "../models/rewritten.ts";
import { readModelInMemory } from "../graph/external_data.ts";
import type { ResidualMap } from "../graph/residuals.ts";
import type { RewriteSpec } from "../graph/rewrite.ts";
import { resolveModelDir } from "../models/hub.ts";
import type { GraphDtype } from "../models/decoder_graph.ts";
import { fileIdentity } from "../io/digest.ts";
import { type ModelIdentity, modelIdentity } from "../models/identity.ts";

import type { Device } from "../backend/device.ts";
export { type Device, DEVICES } from "../backend/device.ts";

export type { GraphDtype };

/** The precisions `--dtype` accepts (of graphs built from Hugging Face checkpoints). */
export const DTYPES: readonly GraphDtype[] = ["fp32", "fp16"];

/** Parses a `--dtype` value (undefined when the flag is absent: the device's default applies). */
export function parseDtype(value: string | undefined): GraphDtype | undefined {
  if (value === undefined) return undefined;
  if ((DTYPES as readonly string[]).includes(value)) return value as GraphDtype;
  throw new UserError(`unknown dtype "${value}": use --dtype fp32 or --dtype fp16`);
}

/**
 * The precision to build a checkpoint's graph in on `device`: `requested`, else fp16 on a hardware GPU
 * with `shader-f16` and fp32 otherwise: always on the CPU, whose runtime lacks most fp16 kernels, and
 * on a software adapter (lavapipe, SwiftShader), where f16 costs accuracy and saves no time.
 */
export async function graphDtype(device: Device, requested?: GraphDtype): Promise<GraphDtype> {
  if (device === "cpu") {
    if (requested === "fp16") throw new UserError("fp16 graphs run on webgpu only: use --dtype fp32 with --device cpu");
    return "fp32";
  }
  const { hasF16, isSoftware, description } = await acquireGpu();
  if (requested === "fp16" && !hasF16) {
    throw new UserError(`the GPU (${description}) has no shader-f16: use --dtype fp32`);
  }
  return requested ?? defaultGraphDtype({ hasF16, isSoftware });
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
  const { model, externalData } = await readModelInMemory(source);
  return ortWeb.InferenceSession.create(model, { ...options, externalData });
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
      // Severity 3 (errors only): onnxruntime's "[W:onnxruntime:...]" lines on normal runs read as trouble.
      return ortNode.InferenceSession.create(source as string, {
        logSeverityLevel: 3,
        ...rest,
        executionProviders: ["cpu"],
      });
    },
  },
};

(globalThis as Record<symbol, unknown>)[Symbol.for("onnxruntime")] = dispatcher;
const transformers: typeof Transformers = await import("@huggingface/transformers");
transformers.env.logLevel = transformers.LogLevel.ERROR;

export { transformers };

/** A loaded causal language model and everything scripts need with it. */
export interface ModelHandle {
  /** What the user passed: a directory or a hub id. */
  source: string;
  /** The local directory the original files are in. */
  localDir: string;
  device: Device;
  config: Transformers.PretrainedConfig & Record<string, unknown>;
  tokenizer: Transformers.PreTrainedTokenizer;
  model: Transformers.PreTrainedModel;
  /**
   * The transformers.js module the model was loaded with (the CLI's, over its runtime dispatcher, or
   * the page's): generation makes its tensors, streamers and seeds there, so it needs no platform import.
   */
  transformers: typeof Transformers;
  /** The ONNX session (of the rewritten graph, when there is one). */
  session: OrtSession;
  /** Where the residual stream is, when the graph was rewritten. */
  residuals?: ResidualMap;
  rewrite?: RewriteSpec;
  /** Whether the session's outputs come back as GPU buffers ({@linkcode LoadOptions.outputsOnGpu}). */
  outputsOnGpu: boolean;
  /** A tensor {@linkcode ModelHandle.session} accepts (each runtime only takes its own tensor class). */
  tensor(
    type: "float32" | "float16" | "int64",
    data: Float32Array | Float16Array | BigInt64Array,
    dims: readonly number[],
  ): OrtTensor;
  dispose(): Promise<void>;
}

/** The part of an ONNX Runtime session (web or node) this toolkit uses. */
export interface OrtSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  /** Declared inputs with their element types (`float32`, `float16`, `int64`, ...). */
  readonly inputMetadata: readonly ortWeb.InferenceSession.ValueMetadata[];
  run(feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>>;
}

/** A tensor of either runtime. */
export type OrtTensor = ortWeb.Tensor | ortNode.Tensor;

/** Where recent transformers versions save a tokenizer's chat template (beside tokenizer_config.json). */
export const CHAT_TEMPLATE_FILE = "chat_template.jinja";

/** The files transformers.js builds a tokenizer from. */
const TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", CHAT_TEMPLATE_FILE];
const tokenizers = new Map<string, Promise<Transformers.PreTrainedTokenizer>>();

/**
 * The tokenizer in `dir`, built once per process for each tokenizer content: building one with a
 * 128k-token vocabulary takes seconds, and a diff needs the same one for its prompts and both models
 * (the rewritten model directories link the same files).
 */
async function tokenizerOf(dir: string): Promise<Transformers.PreTrainedTokenizer> {
  const digests = await Promise.all(
    TOKENIZER_FILES.map((name) => fileIdentity(join(dir, name)).then((f) => f.digest, () => "absent")),
  );
  const key = digests.join(":");
  let tokenizer = tokenizers.get(key);
  if (!tokenizer) {
    tokenizer = transformers.AutoTokenizer.from_pretrained(dir).then(async (loaded) => {
      // Recent transformers save the template beside tokenizer_config.json, which transformers.js
      // does not read: without it a chat model would be taken for one without a template.
      if (!loaded.chat_template) {
        const template = await Deno.readTextFile(join(dir, CHAT_TEMPLATE_FILE)).catch(() => undefined);
        if (template) loaded.chat_template = template;
      }
      return loaded;
    });
    tokenizers.set(key, tokenizer);
    tokenizer.catch(() => tokenizers.delete(key));
  }
  return await tokenizer;
}

/**
 * A model source resolved once: what the user passed, the local directory that will run (a
 * checkpoint's graph built at `dtype`) and that directory's identity, so nothing resolves or hashes
 * the same model twice in one run.
 */
export interface ResolvedModel {
  source: string;
  dir: string;
  dtype: GraphDtype;
  identity: ModelIdentity;
}

/**
 * Resolves `source` (a directory or a hub id) for `device`: a checkpoint is checked (config, tensors)
 * before its graph is built, and an unsupported model refused in one line before any conversion.
 */
export async function resolveModel(
  source: string,
  options: { device: Device; dtype?: GraphDtype },
): Promise<ResolvedModel> {
  const dtype = await graphDtype(options.device, options.dtype);
  const dir = await resolveModelDir(source, { dtype });
  return { source, dir, dtype, identity: await modelIdentity(dir) };
}

/** Options of {@linkcode loadModel}. */
export interface LoadOptions {
  device: Device;
  /** ONNX file under `onnx/` without extension (default `model`). */
  modelFileName?: string;
  /** Precision of a graph built from a Hugging Face checkpoint (default: {@linkcode graphDtype}'s). */
  dtype?: GraphDtype;
  /** Rewrite the graph first (capture residuals, cut, steer); the rewritten model is cached on disk. */
  rewrite?: RewriteSpec;
  /**
   * On webgpu, leave every output of {@linkcode ModelHandle.session} (residuals, logits, KV cache) in
   * GPU buffers on the shared device, for our kernels to read in place, instead of reading them back
   * into JS arrays. Such a handle is for forward passes only (not transformers.js's generate).
   */
  outputsOnGpu?: boolean;
  log?: (line: string) => void;
}

/**
 * Loads a causal LM with its tokenizer on `device`: from a local directory or a hub id, or from a
 * model {@linkcode resolveModel} already resolved (its directory and identity are used as they are).
 */
export async function loadModel(model: string | ResolvedModel, options: LoadOptions): Promise<ModelHandle> {
  const resolved = typeof model === "string" ? undefined : model;
  const source = typeof model === "string" ? model : model.source;
  const modelFileName = resolved ? "model" : options.modelFileName ?? "model";
  const localDir = resolved?.dir ??
    await resolveModelDir(source, { modelFileName, dtype: await graphDtype(options.device, options.dtype) });
  let dir = localDir;
  let fileName = modelFileName;
  let residuals: ResidualMap | undefined;
  if (options.rewrite) {
    ({ dir, residuals } = await rewrittenModel(localDir, options.rewrite, {
      modelFileName,
      identity: resolved?.identity,
      log: options.log,
    }));
    fileName = "model";
  }
  if (options.device === "webgpu") await acquireGpu({ log: options.log });
  const outputsOnGpu = options.device === "webgpu" && !!options.outputsOnGpu;
  const sessionOptions: SessionOptions = {
    executionProviders: [options.device === "webgpu" ? "webgpu" : "cpu"],
    ...(outputsOnGpu && { preferredOutputLocation: "gpu-buffer" }),
  };
  transformers.env.allowLocalModels = true;
  transformers.env.allowRemoteModels = false;
  try {
    const tokenizer = await tokenizerOf(dir);
    const model = await transformers.AutoModelForCausalLM.from_pretrained(dir, {
      dtype: "fp32",
      // Under the dispatcher transformers.js knows no devices by name; the providers below decide.
      device: "auto",
      model_file_name: fileName,
      session_options: sessionOptions,
    });
    const config = model.config as ModelHandle["config"];
    const session = (model as unknown as { sessions: Record<string, OrtSession> }).sessions.model;
    return {
      source,
      localDir,
      device: options.device,
      config,
      tokenizer,
      model,
      transformers,
      session,
      residuals,
      rewrite: options.rewrite,
      outputsOnGpu,
      // transformers.js's Tensor wraps a tensor of the runtime it was loaded over.
      tensor: (type, data, dims) =>
        (new transformers.Tensor(type, data, [...dims]) as unknown as { ort_tensor: OrtTensor }).ort_tensor,
      dispose: async () => {
        await model.dispose();
      },
    };
  } catch (error) {
    if (error instanceof UserError) throw error;
    throw new UserError(`could not load the model in ${localDir}: ${describeError(error)}`);
  }
}

/**
 * Just the tokenizer and config of a model (no session): enough to format and tokenize prompts. For a
 * Hugging Face checkpoint pass the directory {@linkcode resolveModelDir} gave at the run's dtype: the
 * checkpoint's own directory would have its graph built (again) at fp32.
 */
export async function loadTokenizer(
  source: string,
): Promise<Pick<ModelHandle, "tokenizer" | "config" | "source">> {
  const dir = await resolveModelDir(source);
  transformers.env.allowRemoteModels = false;
  const tokenizer = await tokenizerOf(dir);
  const config = JSON.parse(await Deno.readTextFile(join(dir, "config.json"))) as ModelHandle["config"];
  return { tokenizer, config, source };
}

/** Loads `source` rewritten to output the residual stream at `layers` (-1 = embeddings). */
export function loadForCapture(
  source: string | ResolvedModel,
  layers: number[],
  options: {
    device: Device;
    dtype?: GraphDtype;
    cut?: boolean;
    /** Leave the residuals on the GPU for {@linkcode residualOnDevice} (webgpu only). */
    outputsOnGpu?: boolean;
    log?: (line: string) => void;
  },
): Promise<ModelHandle> {
  return loadModel(source, {
    device: options.device,
    dtype: options.dtype,
    outputsOnGpu: options.outputsOnGpu,
    log: options.log,
    rewrite: { capture: [...layers], cut: options.cut ?? true, steering: [] },
  });
}
