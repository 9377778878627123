/**
 * The one place that talks to `navigator.gpu`: probes Deno's WebGPU adapter and acquires the process's
 * device, once, and describes them. The device is onnxruntime-web's (./ort_web.ts), so a model's
 * outputs kept on the GPU feed our kernels directly.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { describeError, UserError } from "../core/errors.ts";
import { ortWeb, sharedDevice } from "./ort_web.ts";
import { describeAdapter, describeGpu, type Gpu, gpuOf, isSoftwareAdapter } from "./gpu_info.ts";

export { describeGpu, type Gpu, isSoftwareAdapter };

// ORT-web's wasm files from the local package (it would otherwise fetch them from a CDN).
ortWeb.env.wasm.wasmPaths = fileURLToPath(new URL("../../node_modules/onnxruntime-web/dist/", import.meta.url));

const NO_ADAPTER_HELP =
  "no WebGPU adapter found: install a GPU driver with Vulkan support (without a GPU: `apt-get install mesa-vulkan-drivers`), " +
  "check DENO_WEBGPU_BACKEND is unset, or run with --device cpu";

let gpuPromise: Promise<Gpu> | undefined;
let probePromise: Promise<AdapterProbe | undefined> | undefined;

/**
 * Mesa prints "error: XDG_RUNTIME_DIR is invalid or not set in the environment." whenever it starts
 * without one, although nothing is wrong; users read it as a failure. Give the process a private
 * (0700) one before anything asks for an adapter.
 */
export function ensureXdgRuntimeDir() {
  if (Deno.env.get("XDG_RUNTIME_DIR")) return;
  // One private directory beside the toolkit's other caches, reused by every run: nothing piles up in
  // the system temp dir, even from processes that are killed.
  const local = new URL("../../.cache/xdg-runtime", import.meta.url);
  const dir = local.protocol === "file:"
    ? fileURLToPath(local)
    : `${Deno.env.get("TMPDIR") ?? "/tmp"}/model-diff-xdg-${Deno.uid() ?? "user"}`;
  Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
  Deno.env.set("XDG_RUNTIME_DIR", dir);
}
ensureXdgRuntimeDir();

/**
 * Returns the process's GPU, requesting adapter and device on first use. Throws a {@linkcode UserError}
 * with a fix when there is no adapter.
 */
export function acquireGpu(options: { log?: (line: string) => void } = {}): Promise<Gpu> {
  gpuPromise ??= requestGpu(options.log);
  return gpuPromise;
}

/** What the adapter is, before any device is made: enough to choose between WebGPU and the CPU. */
export interface AdapterProbe {
  adapter: GPUAdapter;
  /** `vendor / architecture / description`, as far as the adapter tells. */
  description: string;
  isSoftware: boolean;
}

/** The process's adapter (requested once) and what it is; undefined when there is none. Never throws. */
export function probeAdapter(): Promise<AdapterProbe | undefined> {
  probePromise ??= (async () => {
    const adapter = await navigator.gpu?.requestAdapter({ powerPreference: "high-performance" }).catch(() => null);
    if (!adapter) return undefined;
    return { adapter, description: describeAdapter(adapter.info), isSoftware: isSoftwareAdapter(adapter.info) };
  })();
  return probePromise;
}

async function requestGpu(log?: (line: string) => void): Promise<Gpu> {
  const probe = await probeAdapter();
  if (!probe) throw new UserError(NO_ADAPTER_HELP);
  const { adapter } = probe;
  // ORT-web's device, made with the limits and features it asks of the adapter (its binding limits,
  // shader-f16 where there is one): the kernels chunk by what the device allows, read below.
  const device = await sharedDevice().catch((error) => {
    throw new UserError(
      `onnxruntime-web could not open the GPU (${
        describeError(error)
      }): update the GPU driver or run with --device cpu`,
    );
  });
  const gpu = gpuOf(adapter, device);
  log?.(describeGpu(gpu));
  return gpu;
}
