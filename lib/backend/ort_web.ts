/**
 * onnxruntime-web, set up once for this toolkit, and the one GPU device it and our kernels share.
 *
 * ORT-web's WebGPU backend creates its device itself and ignores one handed to it, but exposes the
 * device it made; building our kernels on that device lets a model's outputs stay on the GPU and feed
 * them directly (no read-back and re-upload between two devices). The device exists only once a
 * WebGPU session does, so {@linkcode sharedDevice} makes a one-node session for it and keeps it open
 * for the life of the process: ORT releases its device with its last session.
 *
 * @module
 */

import * as ortWeb from "onnxruntime-web/webgpu";
import { DataType, encodeModel } from "../graph/onnx.ts";

// One thread: the wasm part only runs the few CPU-side ops. Where the wasm files are is the platform's
// to say (lib/backend/gpu.ts for Deno, the page for a browser); ORT would fetch them from a CDN.
ortWeb.env.wasm.numThreads = 1;
// Warnings of a normal run ("some nodes were not assigned to the preferred execution providers") are
// not for users; real failures still surface as errors.
ortWeb.env.logLevel = "error";
// The adapter lib/backend/gpu.ts probes for asks for high performance too, so both name the same one.
ortWeb.env.webgpu.powerPreference = "high-performance";

export { ortWeb };

let devicePromise: Promise<GPUDevice> | undefined;
/** Never read: holding the session holds ORT's device. */
let _keepAlive: ortWeb.InferenceSession | undefined;

/** A graph of one Identity node: the cheapest session that makes ORT create its WebGPU device. */
function identityModel(): Uint8Array {
  const value = (name: string) => ({
    name,
    type: { tensorType: { elemType: DataType.FLOAT, shape: { dim: [{ dimValue: 1 }] } } },
  });
  return encodeModel({
    irVersion: 8,
    opsetImport: [{ domain: "", version: 17 }],
    graph: {
      name: "device",
      node: [{ name: "identity", opType: "Identity", input: ["x"], output: ["y"] }],
      input: [value("x")],
      output: [value("y")],
    },
  });
}

/** ORT-web's WebGPU device, created on first use and shared by every session and kernel of the process. */
export function sharedDevice(): Promise<GPUDevice> {
  devicePromise ??= (async () => {
    _keepAlive = await ortWeb.InferenceSession.create(identityModel(), { executionProviders: ["webgpu"] });
    return await ortWeb.env.webgpu.device as GPUDevice;
  })();
  devicePromise.catch(() => devicePromise = undefined);
  return devicePromise;
}
