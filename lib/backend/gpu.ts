/**
 * The one place that talks to `navigator.gpu`: probes Deno's WebGPU adapter and acquires the process's
 * device, once, and describes them. The device is onnxruntime-web's (./ort_web.ts), so a model's
 * outputs kept on the GPU feed our kernels directly.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { describeError, UserError } from "../core/errors.ts";
import { sharedDevice } from "./ort_web.ts";

/** The process-wide GPU: adapter, device and what they can do. */
export interface Gpu {
  adapter: GPUAdapter;
  device: GPUDevice;
  /** `vendor / architecture / description`, as far as the adapter tells. */
  description: string;
  /** True for Mesa's llvmpipe/lavapipe and other CPU implementations. */
  isSoftware: boolean;
  hasF16: boolean;
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
}

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

/**
 * Renderers that emulate a GPU on the CPU, by the names their adapters report: Mesa's llvmpipe (GL)
 * and lavapipe (Vulkan, which Deno reports as "llvmpipe (LLVM …)"), softpipe, Google's SwiftShader,
 * Microsoft's WARP ("Microsoft Basic Render Driver").
 */
const SOFTWARE_NAMES = /llvmpipe|lavapipe|softpipe|swiftshader|microsoft basic render|\bwarp\b|software/i;

/**
 * Whether an adapter is a software renderer: `isFallbackAdapter` where the implementation sets it
 * (Deno does for lavapipe), else by the renderer's name, since not every stack sets the flag.
 */
export function isSoftwareAdapter(
  info: Pick<GPUAdapterInfo, "vendor" | "architecture" | "description"> & {
    device?: string;
    isFallbackAdapter?: boolean;
  },
): boolean {
  if (info.isFallbackAdapter) return true;
  return SOFTWARE_NAMES.test([info.vendor, info.architecture, info.device, info.description].join(" "));
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

/** `vendor / architecture / description`, as far as the adapter tells. */
function describeAdapter(info: GPUAdapterInfo): string {
  return [info.vendor, info.architecture, info.description].filter((s) => s).join(" / ") || "unknown adapter";
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
  const hasF16 = device.features.has("shader-f16");
  // What the device was made from: ORT asks for its own adapter, which on a machine with several
  // need not be the one probed.
  const info = (device as GPUDevice & { adapterInfo?: GPUAdapterInfo }).adapterInfo ?? adapter.info;
  const [description, isSoftware] = [describeAdapter(info), isSoftwareAdapter(info)];
  const gpu: Gpu = {
    adapter,
    device,
    description,
    isSoftware,
    hasF16,
    maxStorageBufferBindingSize: device.limits.maxStorageBufferBindingSize,
    maxBufferSize: device.limits.maxBufferSize,
  };
  log?.(describeGpu(gpu));
  return gpu;
}

/** One line for logs: adapter, whether it is software, f16, and the binding limits kernels chunk by. */
export function describeGpu(gpu: Gpu): string {
  const mib = (n: number) => `${Math.round(n / 2 ** 20)} MiB`;
  return `WebGPU: ${gpu.description}${gpu.isSoftware ? " (software)" : ""}; shader-f16 ${
    gpu.hasF16 ? "yes" : "no"
  }; max storage binding ${mib(gpu.maxStorageBufferBindingSize)}, max buffer ${mib(gpu.maxBufferSize)}`;
}
