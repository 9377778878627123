/**
 * What a GPU device can do, described the same way wherever it was made (Deno's WebGPU, a browser's):
 * the toolkit's kernels and device choice read this, never the platform.
 *
 * @module
 */

import type { GraphDtype } from "../models/decoder_graph.ts";

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

/** `vendor / architecture / description`, as far as the adapter tells. */
export function describeAdapter(info: GPUAdapterInfo): string {
  return [info.vendor, info.architecture, info.description].filter((s) => s).join(" / ") || "unknown adapter";
}

/**
 * The {@linkcode Gpu} of `device` (made from `adapter`). ORT asks for its own adapter, which on a
 * machine with several need not be the one probed, so the device's own adapter info wins where it has one.
 */
export function gpuOf(adapter: GPUAdapter, device: GPUDevice): Gpu {
  const info = (device as GPUDevice & { adapterInfo?: GPUAdapterInfo }).adapterInfo ?? adapter.info;
  return {
    adapter,
    device,
    description: describeAdapter(info),
    isSoftware: isSoftwareAdapter(info),
    hasF16: device.features.has("shader-f16"),
    maxStorageBufferBindingSize: device.limits.maxStorageBufferBindingSize,
    maxBufferSize: device.limits.maxBufferSize,
  };
}

/** One line for logs: adapter, whether it is software, f16, and the binding limits kernels chunk by. */
export function describeGpu(gpu: Gpu): string {
  const mib = (n: number) => `${Math.round(n / 2 ** 20)} MiB`;
  return `WebGPU: ${gpu.description}${gpu.isSoftware ? " (software)" : ""}; shader-f16 ${
    gpu.hasF16 ? "yes" : "no"
  }; max storage binding ${mib(gpu.maxStorageBufferBindingSize)}, max buffer ${mib(gpu.maxBufferSize)}`;
}

/**
 * The graph precision a GPU runs best: fp16 on a hardware GPU with `shader-f16`, fp32 otherwise (on a
 * software adapter, lavapipe or SwiftShader, f16 costs accuracy and saves no time).
 */
export function defaultGraphDtype(gpu: Pick<Gpu, "hasF16" | "isSoftware">): GraphDtype {
  return gpu.hasF16 && !gpu.isSoftware ? "fp16" : "fp32";
}
