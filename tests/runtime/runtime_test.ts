import { assert, assertClose, assertEquals } from "../assert.ts";
import { renderChat, tokenizeRendered } from "../../lib/runtime/chat.ts";
import { referenceForward } from "../../lib/fixtures/reference.ts";
import { generateGreedy } from "../../lib/runtime/generation.ts";
import { acquireGpu } from "../../lib/backend/gpu.ts";
import { DEVICES, transformers } from "../../lib/runtime/runtime.ts";
import * as ortWeb from "onnxruntime-web/webgpu";
import { argmax, fixtureHandle, fixtureReference } from "../helpers.ts";

/** Logits, f32 runtimes against the f64 reference, per element. Observed worst: 1.1e-5 absolute (logits up to 5.3). */
const LOGIT_TOLERANCE = { rtol: 1e-4, atol: 1e-4 };
const PROMPTS = ["What is the capital of France?", "Write a haiku about gradient descent, please."];

for (const name of ["tiny-llama-chat", "tiny-gemma2-chat"]) {
  for (const device of DEVICES) {
    Deno.test(`${name} on ${device}: padded batch logits match the f64 reference`, async () => {
      const handle = await fixtureHandle(name, device);
      const { config, weights } = fixtureReference(name);
      const texts = PROMPTS.map((p) => renderChat(handle, [{ role: "user", content: p }]));
      const inputs = handle.tokenizer(texts, { add_special_tokens: false, padding: true });
      const output = await handle.model(inputs) as { logits: InstanceType<typeof transformers.Tensor> };
      const [batch, length, vocab] = output.logits.dims;
      assertEquals([batch, vocab], [2, config.vocabSize]);
      const logits = output.logits.data as Float32Array;
      const mask = (inputs.attention_mask.tolist() as bigint[][]).map((row) => row.map(Number));
      for (let b = 0; b < batch; b++) {
        const ids = tokenizeRendered(handle, texts[b]);
        assertEquals(mask[b].reduce((a, m) => a + m, 0), ids.length, "right padding keeps every real token");
        const reference = referenceForward(config, weights, ids, { withLogits: true });
        for (const t of [0, Math.floor(ids.length / 2), ids.length - 1]) {
          const row = logits.subarray((b * length + t) * vocab, (b * length + t + 1) * vocab);
          assertClose(row, reference.logits[t], { ...LOGIT_TOLERANCE, label: `prompt ${b} token ${t}` });
        }
      }
    });
  }

  Deno.test(`${name}: greedy generate() of 20 tokens is identical on webgpu and cpu and matches the reference`, async () => {
    const outputs: number[][] = [];
    let promptIds: number[] = [];
    for (const device of DEVICES) {
      const handle = await fixtureHandle(name, device);
      promptIds = tokenizeRendered(handle, renderChat(handle, [{ role: "user", content: PROMPTS[0] }]));
      outputs.push(await generateGreedy(handle, promptIds, 20));
    }
    assertEquals(outputs[0].length, 20);
    assertEquals(outputs[0], outputs[1]);
    // The f64 reference decodes the first tokens the same way (no KV cache: a full forward per step).
    const { config, weights } = fixtureReference(name);
    const ids = [...promptIds];
    for (let step = 0; step < 3; step++) {
      const { logits } = referenceForward(config, weights, ids, { withLogits: true, logitsFrom: ids.length - 1 });
      const last = logits[0];
      ids.push(argmax(last));
    }
    assertEquals(ids.slice(promptIds.length), outputs[0].slice(0, 3));
  });
}

Deno.test("the webgpu device really runs on onnxruntime-web's WebGPU backend, on the device our kernels use", async () => {
  await fixtureHandle("tiny-llama-chat", "webgpu");
  const device = await ortWeb.env.webgpu.device as GPUDevice | undefined;
  assert(device && typeof device.createBuffer === "function", "ORT-web created a GPUDevice");
  assert((await acquireGpu()).device === device, "the kernels' device is ORT-web's");
});
