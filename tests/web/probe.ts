/// <reference lib="dom" />
/**
 * The probe page's script (tests/web/harness.ts bundles it beside the app): the page's platform modules
 * on `globalThis.probe`, for tests to call through `page.evaluate`, and an onnxruntime-web check that
 * runs a Mul model on the WebGPU execution provider with the site's `ort/` files.
 */

import * as ort from "onnxruntime-web/webgpu";
import { GraphBuilder } from "../../lib/graph/builder.ts";
import { DataType, encodeModel } from "../../lib/graph/onnx.ts";
import { ORT_DIR } from "../../lib/run/web_layout.ts";
import { filesSource, folderSource, relativePath } from "../../web/platform/file_source.ts";
import { cacheSize, clearCaches, openStore } from "../../web/platform/opfs.ts";
import { memoryOutput } from "../../web/platform/output.ts";

/** Runs x * 2 on the WebGPU EP; returns the output and the EP that ran it. */
async function runMul(): Promise<{ output: number[] }> {
  ort.env.wasm.wasmPaths = new URL(ORT_DIR, location.href).href;
  ort.env.wasm.numThreads = 1;
  const graph = new GraphBuilder();
  const x = graph.input({ name: "x", elemType: DataType.FLOAT, dims: [4] });
  const [y] = graph.ops("Mul", [x, graph.float(2)]);
  graph.output(y, { name: "y", elemType: DataType.FLOAT, dims: [4] });
  const session = await ort.InferenceSession.create(encodeModel(graph.build("mul")), {
    executionProviders: ["webgpu"],
  });
  const result = await session.run({ x: new ort.Tensor("float32", new Float32Array([1, 2, 3, 4]), [4]) });
  await session.release();
  return { output: [...(result.y.data as Float32Array)] };
}

const probe = {
  filesSource,
  folderSource,
  relativePath,
  openStore,
  cacheSize,
  clearCaches,
  memoryOutput,
  runMul,
  /** The files of the input matching `selector`. */
  files: (selector: string) => [...(document.querySelector<HTMLInputElement>(selector)?.files ?? [])],
};

(globalThis as unknown as { probe: typeof probe }).probe = probe;
document.body.dataset.state = "idle";
