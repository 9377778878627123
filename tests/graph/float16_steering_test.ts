/**
 * Steering on fp16 graphs (Optimum's fp16 layout and onnxruntime-genai's): the intervention is
 * computed in f32 whatever the residual's dtype, so a huge vector still ablates and a zero vector is
 * an exact no-op. Runs the graphs on onnxruntime-web's WebGPU backend directly (the CPU runtime has
 * no fp16 kernels for most of these ops).
 */

import * as ortWeb from "onnxruntime-web/webgpu";
import { assert, assertEquals } from "../assert.ts";
import { toFloat16 } from "../../lib/fixtures/float16.ts";
import { buildFixtureGraph, type GraphLayout } from "../../lib/fixtures/decoder_graph.ts";
import { SeededRandom } from "../../lib/core/random.ts";
import { acquireGpu } from "../../lib/backend/gpu.ts";
import { decodeModel, encodeModel } from "../../lib/graph/onnx.ts";
import { residualOutputName, rewriteModel } from "../../lib/graph/rewrite.ts";
import "../../lib/runtime/runtime.ts"; // onnxruntime-web's local wasm paths
import { steeringInputNames } from "../../lib/graph/steering.ts";
import { fixtureReference } from "../helpers.ts";

const gpu = await acquireGpu();
const hasF16 = gpu.adapter.features.has("shader-f16");
const { config, weights } = fixtureReference("tiny-llama-chat");
const IDS = [128000, 128006, 882, 128007, 271, 13347, 1268, 527, 499, 30, 128009, 128006, 78191, 128007, 271];

function feeds(extra: Record<string, ortWeb.Tensor> = {}): Record<string, ortWeb.Tensor> {
  const n = IDS.length;
  const int64 = (values: number[]) => new ortWeb.Tensor("int64", BigInt64Array.from(values, BigInt), [1, n]);
  const out: Record<string, ortWeb.Tensor> = {
    input_ids: int64(IDS),
    attention_mask: int64(IDS.map(() => 1)),
    position_ids: int64(IDS.map((_, i) => i)),
    ...extra,
  };
  for (let l = 0; l < config.numLayers; l++) {
    for (const kind of ["key", "value"]) {
      out[`past_key_values.${l}.${kind}`] = new ortWeb.Tensor("float16", new Uint16Array(0), [
        1,
        config.numKvHeads,
        0,
        config.headDim,
      ]);
    }
  }
  return out;
}

/** Inputs of every steering site: vector `vectors[i]` for site i, magnitude 0 (pure ablation). */
function steeringFeeds(vectors: Float32Array[]): Record<string, ortWeb.Tensor> {
  return Object.fromEntries(vectors.flatMap((vector, index) => {
    const names = steeringInputNames(index);
    return [
      [names.vector, new ortWeb.Tensor("float32", vector, [vector.length])],
      [names.scalar, new ortWeb.Tensor("float32", new Float32Array([0]), [])],
    ];
  }));
}

const halves = (tensor: ortWeb.Tensor) => {
  const data = tensor.data as Uint16Array | Float16Array;
  return data instanceof Float16Array ? new Uint16Array(data.buffer, data.byteOffset, data.length) : data;
};

// The first and the last layer at once (two sites, each with its own inputs): one session per layout.
const LAYERS = [0, config.numLayers - 1];

for (const layout of ["optimum", "genai"] as GraphLayout[]) {
  Deno.test({
    name: `fp16 ${layout} graph, layers ${LAYERS}: |v| = 1000 ablation removes the component, zero vector is a no-op`,
    ignore: !hasF16,
    fn: async () => {
      const model = buildFixtureGraph(config, weights, layout);
      toFloat16(model);
      const plainBytes = encodeModel(model);
      const steered = decodeModel(plainBytes, "fp16 fixture");
      rewriteModel(steered, {
        capture: LAYERS,
        cut: false,
        steering: LAYERS.map((layer) => ({ layer, kind: "ablation", positions: "all" })),
      });
      const options = { executionProviders: ["webgpu"] };
      const plain = await ortWeb.InferenceSession.create(plainBytes, options);
      const session = await ortWeb.InferenceSession.create(encodeModel(steered), options);

      const d = config.hiddenSize;
      const reference = (await plain.run(feeds())).logits;
      const zero = await session.run(feeds(steeringFeeds(LAYERS.map(() => new Float32Array(d)))));
      assertEquals(zero.logits.type, "float16");
      const [a, b] = [halves(zero.logits), halves(reference)];
      const firstDiff = a.findIndex((x, i) => x !== b[i]);
      assertEquals(firstDiff, -1, `zero vector: logits differ at ${firstDiff}`);

      const direction = new SeededRandom(77).normals(d);
      const norm = Math.hypot(...direction);
      const vector = Float32Array.from(direction, (x) => (1000 * x) / norm);
      const out = await session.run(feeds(steeringFeeds(LAYERS.map(() => vector))));
      const logits = new Float16Array(halves(out.logits).buffer);
      assert(logits.every(Number.isFinite), "no NaN or infinite logit");
      for (const layer of LAYERS) {
        const residual = out[residualOutputName(layer)].data as Float32Array;
        for (let t = 0; t < IDS.length; t++) {
          const x = residual.subarray(t * d, (t + 1) * d);
          let projection = 0;
          for (let i = 0; i < d; i++) projection += x[i] * direction[i] / norm;
          const length = Math.hypot(...x);
          assert(length > 0 && Number.isFinite(length), `layer ${layer} token ${t}: residual is finite and non-zero`);
          assert(
            Math.abs(projection) <= 1e-2 * length,
            `layer ${layer} token ${t}: projection ${projection} of |x| = ${length}`,
          );
        }
      }
      await plain.release();
      await session.release();
    },
  });
}
