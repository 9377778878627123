/**
 * Shared plumbing of the WGSL kernel wrappers: loading a shader once per device, buffers, uniform
 * parameters and read-back.
 *
 * @module
 */

import type { Gpu } from "../backend/gpu_info.ts";

const pipelines = new WeakMap<GPUDevice, Map<string, GPUComputePipeline>>();

/** Where `shaders/` is: beside lib/ in a checkout; a bundled page says where it serves them. */
let shaderRoot = new URL("../../shaders/", import.meta.url);

/** Points the kernels at the `shaders/` folder a page serves (its bundle no longer sits beside them). */
export function setShaderRoot(root: URL): void {
  shaderRoot = root;
}

/**
 * The compute pipeline of `shaders/<name>.wgsl` (entry `main`) with the given values of its `override`
 * constants, compiled once per device and set of constants.
 */
export async function pipeline(
  gpu: Gpu,
  name: string,
  constants: Record<string, number> = {},
): Promise<GPUComputePipeline> {
  let byName = pipelines.get(gpu.device);
  if (!byName) pipelines.set(gpu.device, byName = new Map());
  const id = `${name} ${JSON.stringify(constants)}`;
  let found = byName.get(id);
  if (!found) {
    // fetch reads file: URLs in Deno and served files in a page: the same line on both platforms.
    const url = new URL(`${name}.wgsl`, shaderRoot);
    const response = await fetch(url);
    if (!response.ok) throw new Error(`the kernel ${name} is not at ${url} (${response.status})`);
    const code = await response.text();
    const module = gpu.device.createShaderModule({ code, label: name });
    found = await gpu.device.createComputePipelineAsync({
      layout: "auto",
      compute: { module, entryPoint: "main", constants },
    });
    byName.set(id, found);
  }
  return found;
}

/** A storage buffer holding `data` (or `bytes` zeroed bytes). */
export function storageBuffer(gpu: Gpu, data: ArrayBufferView | number, readBack = false): GPUBuffer {
  const size = Math.max(16, Math.ceil((typeof data === "number" ? data : data.byteLength) / 4) * 4);
  const buffer = gpu.device.createBuffer({
    size,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | (readBack ? GPUBufferUsage.COPY_SRC : 0),
  });
  if (typeof data !== "number" && data.byteLength) {
    gpu.device.queue.writeBuffer(buffer, 0, data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
  }
  return buffer;
}

/** A uniform buffer of u32 parameters. */
export function uniformBuffer(gpu: Gpu, values: number[]): GPUBuffer {
  const data = new Uint32Array(Math.ceil(values.length / 4) * 4);
  data.set(values);
  const buffer = gpu.device.createBuffer({
    size: data.byteLength,
    usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
  });
  gpu.device.queue.writeBuffer(buffer, 0, data);
  return buffer;
}

/**
 * Encodes one dispatch of `pipe` with `buffers` bound in order at group 0 (a whole buffer, or a range
 * of one as a binding).
 */
export function dispatch(
  gpu: Gpu,
  commands: GPUCommandEncoder,
  pipe: GPUComputePipeline,
  buffers: (GPUBuffer | GPUBufferBinding)[],
  groups: [number, number, number?],
): void {
  const bindGroup = gpu.device.createBindGroup({
    layout: pipe.getBindGroupLayout(0),
    entries: buffers.map((buffer, binding) => ({
      binding,
      resource: buffer instanceof GPUBuffer ? { buffer } : buffer,
    })),
  });
  const pass = commands.beginComputePass();
  pass.setPipeline(pipe);
  pass.setBindGroup(0, bindGroup);
  pass.dispatchWorkgroups(groups[0], groups[1], groups[2] ?? 1);
  pass.end();
}

/** Copies `bytes` bytes of `source` into a mappable buffer after `commands`'s work and reads them. */
export async function readBack(
  gpu: Gpu,
  commands: GPUCommandEncoder,
  source: GPUBuffer,
  bytes: number,
): Promise<Float32Array> {
  const [out] = await readBackAll(gpu, commands, [{ buffer: source, bytes }]);
  return new Float32Array(out);
}

/**
 * Copies the first `bytes` of each source into one mappable buffer after `commands`'s work, submits,
 * and returns their bytes: one submit and one map for all of them.
 */
export async function readBackAll(
  gpu: Gpu,
  commands: GPUCommandEncoder,
  sources: { buffer: GPUBuffer; bytes: number }[],
): Promise<ArrayBuffer[]> {
  const offsets: number[] = [];
  let size = 0;
  for (const { bytes } of sources) {
    offsets.push(size);
    size += Math.ceil(bytes / 4) * 4;
  }
  const staging = gpu.device.createBuffer({
    size: Math.max(4, size),
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  sources.forEach(({ buffer, bytes }, i) => {
    if (bytes) commands.copyBufferToBuffer(buffer, 0, staging, offsets[i], Math.ceil(bytes / 4) * 4);
  });
  gpu.device.queue.submit([commands.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const mapped = staging.getMappedRange();
  const out = sources.map(({ bytes }, i) => mapped.slice(offsets[i], offsets[i] + bytes));
  staging.unmap();
  staging.destroy();
  return out;
}
