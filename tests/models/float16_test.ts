/**
 * `--dtype fp16`: a checkpoint's graph built in half precision (weights, residual stream, KV cache and
 * matmuls in f16; norms, attention scores and softmax, soft-capping, activations and logits in f32)
 * stays close to the f64 reference on the weights as stored, and steering picks the same tokens as the
 * fp32 graph. fp16 graphs run on WebGPU only (the adapter needs shader-f16).
 */

import { assert, assertClose, assertEquals } from "../assert.ts";
import { residuals, vectorAt } from "../../lib/runtime/activations.ts";
import { acquireGpu } from "../../lib/backend/gpu.ts";
import { withSteering } from "../../lib/runtime/generation.ts";
import { referenceForward } from "../../lib/fixtures/reference.ts";
import { SeededRandom } from "../../lib/core/random.ts";
import { type GraphDtype, type ModelHandle, transformers } from "../../lib/runtime/runtime.ts";
import { buildFixtureGraph } from "../../lib/fixtures/decoder_graph.ts";
import { DataType, decodeModel, encodeModel } from "../../lib/graph/onnx.ts";
import { elemTypeOf } from "../../lib/graph/rewrite.ts";
import type { SteeringSite, SteeringValues } from "../../lib/graph/steering.ts";
import { argmax, chatIds, fixtureHandle, fixtureReference } from "../helpers.ts";

const hasF16 = (await acquireGpu()).hasF16;

/**
 * fp16 against f64: every residual vector within 1e-2 relative (‖Δ‖ ≤ 1e-2 ‖x‖), and every element
 * within 1e-2 relative with a floor of 2e-2 of its vector's RMS (an element near zero carries the
 * rounding of the sums it came from, not its own), so an error confined to a few elements shows too.
 * Observed on the Gemma fixture (lavapipe): 4.6e-3 per vector at worst, an element 1.5e-2 of its RMS
 * off; the fp32 graph is at 7e-7 per vector, so this is fp16's own rounding.
 */
const VECTOR_RTOL = 1e-2;
const ELEMENT = { rtol: 1e-2, floorOfRms: 2e-2 };

/** An addition in the middle and an ablation after it; their vectors point along random directions. */
const SITES: SteeringSite[] = [
  { layer: 1, kind: "addition", positions: "all" },
  { layer: 2, kind: "ablation", positions: "all" },
];

function steeringValues(dModel: number, active: number[], scale: number): SteeringValues[] {
  return SITES.map((_, i) => {
    const v = new SeededRandom(700 + i).normals(dModel);
    const norm = Math.hypot(...v);
    return { vector: active.includes(i) ? v.map((x) => (x / norm) * scale) : new Float32Array(dModel), scalar: 1 };
  });
}

async function logitsOf(handle: ModelHandle, ids: number[], steering: SteeringValues[]): Promise<Float32Array> {
  const inputs = {
    input_ids: new transformers.Tensor("int64", BigInt64Array.from(ids, BigInt), [1, ids.length]),
    attention_mask: new transformers.Tensor("int64", new BigInt64Array(ids.length).fill(1n), [1, ids.length]),
  };
  const run = () => handle.model(inputs) as Promise<{ logits: InstanceType<typeof transformers.Tensor> }>;
  const { logits } = await withSteering(handle, steering, run);
  return (logits.data as Float32Array).slice();
}

function topTokens(logits: Float32Array, vocab: number): number[] {
  return Array.from({ length: logits.length / vocab }, (_, t) => argmax(logits.subarray(t * vocab, (t + 1) * vocab)));
}

// The BF16 sharded Gemma 2 checkpoint: soft-capped attention and logits, (1 + w) norms, GeGLU.
for (const name of ["tiny-gemma2-chat"]) {
  Deno.test({
    name: `${name} at fp16 on webgpu: residuals within 1e-2 of f64 at every layer; steering gives fp32's top tokens`,
    ignore: !hasF16,
    fn: async () => {
      const { config, weights } = fixtureReference(name);
      const layers = Array.from({ length: config.numLayers }, (_, l) => l);
      const capture = await fixtureHandle(name, "webgpu", { capture: layers, cut: true, steering: [] }, "fp16");
      const [ids] = chatIds(capture, ["Name three rivers in Europe and say which is longest."]);
      const reference = referenceForward(config, weights, ids);
      const captured = await residuals(capture, [ids], layers);
      for (const layer of layers) {
        for (let t = 0; t < ids.length; t++) {
          const expected = reference.residuals[layer + 1][t];
          const ours = vectorAt(captured, layer, 0, t);
          const norm = Math.hypot(...expected);
          const error = Math.hypot(...ours.map((x, i) => x - expected[i]));
          const label = `layer ${layer} token ${t}`;
          assert(error <= VECTOR_RTOL * norm, `${label}: ‖Δ‖/‖x‖ = ${error / norm}`);
          const rms = norm / Math.sqrt(expected.length);
          assertClose(ours, expected, { rtol: ELEMENT.rtol, atol: ELEMENT.floorOfRms * rms, label });
        }
      }

      const steered = (dtype: GraphDtype) =>
        fixtureHandle(name, "webgpu", { capture: [], cut: false, steering: SITES }, dtype);
      const [half, full] = [await steered("fp16"), await steered("fp32")];
      const scale = 4 * Math.sqrt(config.hiddenSize);
      for (const active of [[0], [1]]) {
        const values = steeringValues(config.hiddenSize, active, scale);
        const plain = topTokens(await logitsOf(full, ids, steeringValues(config.hiddenSize, [], 0)), config.vocabSize);
        const expected = topTokens(await logitsOf(full, ids, values), config.vocabSize);
        if (active.includes(0)) assert(expected.join() !== plain.join(), `sites ${active} change fp32's top tokens`);
        assertEquals(topTokens(await logitsOf(half, ids, values), config.vocabSize), expected, `sites ${active}`);
      }
    },
  });
}

Deno.test("fp16 graphs keep what overflows in f16 in f32: norms, attention scores, softmax, soft-capping, activations, logits", () => {
  for (const name of ["tiny-gemma2-chat", "tiny-llama31-chat-hf"]) {
    const { config, weights } = fixtureReference(name);
    const graph = decodeModel(encodeModel(buildFixtureGraph(config, weights, "optimum", "fp16")), name).graph;
    const f32Ops = new Set(["Pow", "ReduceMean", "Sqrt", "Reciprocal", "Softmax", "Tanh", "Sigmoid", "Div"]);
    let checked = 0;
    for (const node of graph.node) {
      if (!f32Ops.has(node.opType!)) continue;
      assertEquals(elemTypeOf(graph, node.input![0]), DataType.FLOAT, `${name}: ${node.name} runs in f32`);
      checked++;
    }
    assert(checked > 6 * config.numLayers, `${name}: ${checked} island ops`);
    const type = (t: string) => elemTypeOf(graph, t);
    assertEquals(type("logits"), DataType.FLOAT);
    assertEquals(type("present.0.key"), DataType.FLOAT16);
    assertEquals(type(graph.node.find((n) => n.name === "/model/layers.1/Add_1")!.output![0]), DataType.FLOAT16);
  }
});
