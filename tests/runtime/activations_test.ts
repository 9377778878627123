import { assert, assertClose, assertEquals } from "../assert.ts";
import { join } from "node:path";
import { residuals, vectorAt } from "../../lib/runtime/activations.ts";
import { referenceForward } from "../../lib/fixtures/reference.ts";
import { rewrittenModel } from "../../lib/models/rewritten.ts";
import { readModel } from "../../lib/graph/onnx_file.ts";
import type { RewriteSpec } from "../../lib/graph/rewrite.ts";
import { DEVICES } from "../../lib/runtime/runtime.ts";
import { chatIds, fixtureHandle, fixtureReference } from "../helpers.ts";

/** Residuals, f32 runtimes against the f64 reference, per element. Observed worst: 1.7e-5 absolute (values up to 11). */
const RESIDUAL_TOLERANCE = { rtol: 1e-4, atol: 1e-4 };
/** The cut and the full graph on one runtime run the same kernels on the same inputs (observed: identical). */
const CUT_TOLERANCE = { rtol: 1e-6, atol: 1e-6 };
const LAYERS = [-1, 0, 1, 2, 3];
const PROMPTS = ["Why is the sky blue?", "Hi", "Write a limerick about a cat who loves coffee."];

// The genai fixture is the chat Llama laid out as onnxruntime-genai's builder exports it.
// The dynamo fixture is the chat Llama named as torch's dynamo exporter names nodes.
for (const name of ["tiny-llama-chat", "tiny-gemma2-chat", "tiny-llama-chat-genai", "tiny-llama-chat-dynamo"]) {
  for (const device of DEVICES) {
    Deno.test(`${name} on ${device}: captured residuals at every layer match the f64 reference; the cut graph agrees`, async () => {
      const cutSpec: RewriteSpec = { capture: LAYERS, cut: true, steering: [] };
      const fullSpec: RewriteSpec = { capture: LAYERS, cut: false, steering: [] };
      const cut = await fixtureHandle(name, device, cutSpec);
      const full = await fixtureHandle(name, device, fullSpec);
      const sequences = chatIds(cut, PROMPTS);
      const fromCut = await residuals(cut, sequences, LAYERS);
      const fromFull = await residuals(full, sequences, LAYERS);
      const { config, weights } = fixtureReference(name);
      sequences.forEach((ids, b) => {
        const reference = referenceForward(config, weights, ids);
        for (const layer of LAYERS) {
          for (let t = 0; t < ids.length; t++) {
            assertClose(vectorAt(fromCut, layer, b, t), reference.residuals[layer + 1][t], {
              ...RESIDUAL_TOLERANCE,
              label: `prompt ${b} layer ${layer} token ${t}`,
            });
          }
        }
      });
      for (const layer of LAYERS) {
        const a = fromCut.byLayer.get(layer)!;
        const b = fromFull.byLayer.get(layer)!;
        assertClose(a, b, { ...CUT_TOLERANCE, label: `cut and full graphs at layer ${layer}` });
      }
    });
  }

  if (name.endsWith("genai") || name.endsWith("dynamo")) continue;
  Deno.test(`${name}: the cut graph runs fewer nodes and has no logits`, async () => {
    const cut = await fixtureHandle(name, "cpu", { capture: [1], cut: true, steering: [] });
    const full = await fixtureHandle(name, "cpu", { capture: [1], cut: false, steering: [] });
    const nodeNames = async (handle: typeof cut) => {
      const { dir } = await rewrittenModel(handle.localDir, handle.rewrite!);
      return (await readModel(join(dir, "onnx", "model.onnx"))).graph.node.map((n) => n.name!);
    };
    const [cutNodes, fullNodes] = [await nodeNames(cut), await nodeNames(full)];
    assert(cutNodes.length < fullNodes.length, `${cutNodes.length} nodes vs ${fullNodes.length}`);
    const later = cutNodes.filter((n) => /^\/model\/layers\.[23]\/|^\/lm_head|^\/model\/norm/.test(n));
    assertEquals(later, [], "nothing after layer 1 remains");
    assert(fullNodes.some((n) => n.startsWith("/model/layers.3/")), "the full graph has layer 3");
    assertEquals(cut.session.outputNames, ["resid_post.1"]);
    assert(!cut.session.inputNames.includes("past_key_values.3.key"), "later layers' cache inputs are gone");
  });
}
