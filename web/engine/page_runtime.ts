/// <reference lib="dom" />
/**
 * Models in the page: transformers.js over onnxruntime-web's WebGPU backend on the browser's own
 * `navigator.gpu`, fed from the files the user gave the page. transformers.js loads a model by
 * fetching its files; its `env.fetch` is pointed at the graphs and files held here, so nothing leaves
 * the page and the weights are never uploaded anywhere.
 *
 * The handle is the CLI's {@linkcode ModelHandle}: activations, collection and generation run on it
 * unchanged (lib/runtime/activations.ts, lib/analysis/collect.ts, lib/runtime/generation.ts).
 *
 * @module
 */

import type * as Transformers from "@huggingface/transformers";
import { ortWeb, sharedDevice } from "../../lib/backend/ort_web.ts";
import { type Gpu, gpuOf } from "../../lib/backend/gpu_info.ts";
import { setShaderRoot } from "../../lib/kernels/shader.ts";
import { ORT_DIR, SHADER_DIR } from "../../lib/run/web_layout.ts";
import { describeError, UserError } from "../../lib/core/errors.ts";
import { decodeModel, encodeModel, externalDataLocations } from "../../lib/graph/onnx.ts";
import { rewriteModel, type RewriteSpec } from "../../lib/graph/rewrite.ts";
import type { BuiltModel } from "../../lib/models/built_model.ts";
import type { ModelHandle, OrtSession, OrtTensor } from "../../lib/runtime/runtime.ts";

// Where the site serves ORT's wasm files and our kernels (its build copies them there).
ortWeb.env.wasm.wasmPaths = new URL(ORT_DIR, document.baseURI).href;
setShaderRoot(new URL(SHADER_DIR, document.baseURI));
(globalThis as Record<symbol, unknown>)[Symbol.for("onnxruntime")] = ortWeb;
const transformers: typeof Transformers = await import("@huggingface/transformers");
transformers.env.logLevel = transformers.LogLevel.ERROR;

/** The made-up folder transformers.js is told models live in; {@linkcode pageFetch} answers for it. */
const MODELS_ROOT = "/__page_models__/";
transformers.env.localModelPath = MODELS_ROOT;
transformers.env.allowLocalModels = true;
transformers.env.allowRemoteModels = false;
transformers.env.useBrowserCache = false;
transformers.env.useFSCache = false;

/** The files of each model the page has handed transformers.js, by model id. */
const served = new Map<string, Map<string, Uint8Array>>();

/** transformers.js's fetch in the page: only the files held here; anything else is a 404, never a request. */
function pageFetch(input: string | URL | Request): Promise<Response> {
  const url = new URL(typeof input === "string" ? input : input instanceof URL ? input.href : input.url, location.href);
  const path = decodeURIComponent(url.pathname);
  if (path.startsWith(MODELS_ROOT)) {
    const [owner, name, ...rest] = path.slice(MODELS_ROOT.length).split("/");
    const bytes = served.get(`${owner}/${name}`)?.get(rest.join("/"));
    if (bytes) return Promise.resolve(new Response(bytes as BlobPart, { status: 200 }));
  }
  return Promise.resolve(new Response(null, { status: 404, statusText: "Not Found" }));
}
(transformers.env as unknown as { fetch: typeof pageFetch }).fetch = pageFetch;

export { transformers };

let gpuPromise: Promise<Gpu> | undefined;

/**
 * The page's GPU: onnxruntime-web's device (our kernels run on it, so model outputs kept on the GPU
 * feed them in place, as in the CLI). A browser without WebGPU is one line saying where it is.
 */
export function pageGpu(): Promise<Gpu> {
  gpuPromise ??= (async () => {
    const adapter = await navigator.gpu?.requestAdapter({ powerPreference: "high-performance" }).catch(() => null);
    if (!adapter) throw new UserError(NO_WEBGPU);
    const device = await sharedDevice().catch((error) => {
      throw new UserError(`onnxruntime-web could not open the GPU (${describeError(error)})`);
    });
    return gpuOf(adapter, device);
  })();
  gpuPromise.catch(() => gpuPromise = undefined);
  return gpuPromise;
}

/** What a user without WebGPU is told. */
export const NO_WEBGPU =
  "this browser has no WebGPU: use Chrome or Edge 113+, Safari 26+, or Firefox 141+ on Windows (on Linux, Chromium with --enable-unsafe-webgpu)";

let modelCount = 0;
const tokenizers = new Map<string, Promise<Transformers.PreTrainedTokenizer>>();

/** The files beside the graph transformers.js reads, as the checkpoint has them (config.json as the runtime reads it). */
async function sideFiles(built: BuiltModel): Promise<Map<string, Uint8Array>> {
  const files = new Map<string, Uint8Array>([["config.json", new TextEncoder().encode(built.configText)]]);
  for (const name of ["generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]) {
    if (await built.files.size(name) !== undefined) files.set(name, await built.files.readAll(name, name));
  }
  return files;
}

/** The tokenizer of `built`, made once per model (a 128k-token vocabulary takes seconds). */
export function pageTokenizer(built: BuiltModel): Promise<Transformers.PreTrainedTokenizer> {
  let tokenizer = tokenizers.get(built.identity);
  if (!tokenizer) {
    tokenizer = (async () => {
      const id = `page/tokenizer-${++modelCount}`;
      served.set(id, await sideFiles(built));
      try {
        const loaded = await transformers.AutoTokenizer.from_pretrained(id);
        // Recent transformers save the template beside tokenizer_config.json, which transformers.js does not read.
        if (!loaded.chat_template && await built.files.size("chat_template.jinja") !== undefined) {
          loaded.chat_template = new TextDecoder().decode(await built.files.readAll("chat_template.jinja", "template"));
        }
        return loaded;
      } finally {
        served.delete(id);
      }
    })();
    tokenizers.set(built.identity, tokenizer);
    tokenizer.catch(() => tokenizers.delete(built.identity));
  }
  return tokenizer;
}

/** Just what formatting and tokenizing prompts needs of a model. */
export async function pageTokenizerHandle(
  built: BuiltModel,
  source: string,
): Promise<Pick<ModelHandle, "tokenizer" | "config" | "source">> {
  return {
    tokenizer: await pageTokenizer(built),
    config: JSON.parse(built.configText) as ModelHandle["config"],
    source,
  };
}

/**
 * Loads `built` rewritten by `spec` on the page's GPU. Its external data is the checkpoint's own
 * safetensors files (tensors in the graph's precision, referenced where they lie) and the converted
 * tensors. `outputsOnGpu` leaves every output in GPU buffers for our kernels (forward passes only).
 */
export async function loadPageModel(
  built: BuiltModel,
  source: string,
  spec: RewriteSpec,
  options: { outputsOnGpu?: boolean } = {},
): Promise<ModelHandle> {
  await pageGpu();
  const graph = decodeModel(built.graph, source);
  const residuals = rewriteModel(graph, spec);
  const externalData = [];
  for (const location of externalDataLocations(graph)) {
    const data = location === built.convertedFile ? built.converted! : await built.files.readAll(location, "weights");
    externalData.push({ path: location, data });
  }
  const id = `page/model-${++modelCount}`;
  served.set(id, new Map([...await sideFiles(built), ["onnx/model.onnx", encodeModel(graph)]]));
  const outputsOnGpu = !!options.outputsOnGpu;
  try {
    const tokenizer = await pageTokenizer(built);
    const model = await transformers.AutoModelForCausalLM.from_pretrained(id, {
      dtype: "fp32",
      device: "auto",
      model_file_name: "model",
      session_options: {
        executionProviders: ["webgpu"],
        externalData,
        ...(outputsOnGpu && { preferredOutputLocation: "gpu-buffer" }),
      } as Record<string, unknown>,
    });
    const session = (model as unknown as { sessions: Record<string, OrtSession> }).sessions.model;
    return {
      source,
      localDir: source,
      device: "webgpu",
      config: model.config as ModelHandle["config"],
      tokenizer,
      model,
      transformers,
      session,
      residuals,
      rewrite: spec,
      outputsOnGpu,
      tensor: (type, data, dims) =>
        (new transformers.Tensor(type, data, [...dims]) as unknown as { ort_tensor: OrtTensor }).ort_tensor,
      dispose: async () => {
        await model.dispose();
      },
    };
  } catch (error) {
    if (error instanceof UserError) throw error;
    throw new UserError(`could not load the model ${source}: ${describeError(error)}`);
  } finally {
    served.delete(id);
  }
}
