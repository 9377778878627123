import { assert, assertBytesEqual, assertClose, assertEquals } from "../assert.ts";
import { referenceForward, type ResidualHook } from "../../lib/fixtures/reference.ts";
import { SeededRandom } from "../../lib/core/random.ts";
import { generate, withSteering } from "../../lib/runtime/generation.ts";
import type { RewriteSpec } from "../../lib/graph/rewrite.ts";
import { DEVICES, type ModelHandle, transformers } from "../../lib/runtime/runtime.ts";
import { applyIntervention, type SteeringSite, type SteeringValues } from "../../lib/graph/steering.ts";
import { argmax, chatIds, fixtureHandle, fixtureReference, worstRelativeError } from "../helpers.ts";

const LOGIT_TOLERANCE = 1e-4;
/** Logits, f32 runtimes against the f64 reference, per element. Observed worst: 1.5e-5 absolute (logits up to 5.3). */
const LOGITS_PER_ELEMENT = { rtol: 1e-4, atol: 1e-4 };

/** Every kind, both position modes, two vectors at one layer: one rewritten model covers them all. */
const SITES: SteeringSite[] = [
  { layer: 1, kind: "addition", positions: "all" },
  { layer: 1, kind: "ablation", positions: "last" },
  { layer: 2, kind: "mean_ablation", positions: "all" },
  { layer: 0, kind: "capping", positions: "all" },
  { layer: 3, kind: "addition", positions: "last" },
  // The first and the last layer: on the genai layout these sit on fused norms (the final one included).
  { layer: 0, kind: "addition", positions: "all" },
  { layer: 3, kind: "ablation", positions: "all" },
];
const STEERED: RewriteSpec = { capture: [], cut: false, steering: SITES };
/** The scalar each site gets when active: c, c, μ, τ, c, c, c. */
const SCALARS = [6, -2, 0.5, 0.1, 4, 3, -1];
const EACH_ALONE = SITES.map((_, i) => [i]);
const ALL_AT_ONCE = SITES.map((_, i) => i);

function randomDirection(dModel: number, seed: number): Float32Array {
  const v = new SeededRandom(seed).normals(dModel);
  const norm = Math.hypot(...v);
  return v.map((x) => x / norm);
}

/** Values with only the sites in `active` switched on (the others get a zero vector: no effect). */
function values(dModel: number, active: number[]): SteeringValues[] {
  return SITES.map((_, i) => ({
    vector: active.includes(i) ? randomDirection(dModel, 500 + i) : new Float32Array(dModel),
    scalar: SCALARS[i],
  }));
}

/** The same interventions applied to the f64 reference forward. */
function referenceHook(steering: SteeringValues[], active: number[]): ResidualHook {
  return (layer, residual) => {
    SITES.forEach((site, i) => {
      if (site.layer !== layer || !active.includes(i)) return;
      const positions = site.positions === "all" ? residual.keys() : [residual.length - 1];
      for (const t of positions) applyIntervention(site.kind, residual[t], steering[i].vector, steering[i].scalar);
    });
  };
}

async function lastLogits(handle: ModelHandle, ids: number[], steering?: SteeringValues[]): Promise<Float32Array> {
  const inputs = {
    input_ids: new transformers.Tensor("int64", BigInt64Array.from(ids, BigInt), [1, ids.length]),
    attention_mask: new transformers.Tensor("int64", new BigInt64Array(ids.length).fill(1n), [1, ids.length]),
  };
  const run = () => handle.model(inputs) as Promise<{ logits: InstanceType<typeof transformers.Tensor> }>;
  const { logits } = steering ? await withSteering(handle, steering, run) : await run();
  return (logits.data as Float32Array).slice();
}

// The genai fixture is the chat Llama in onnxruntime-genai's fused layout: steering must un-fuse its norms.
for (const name of ["tiny-llama-chat", "tiny-gemma2-chat", "tiny-llama-chat-genai"]) {
  const { config, weights } = fixtureReference(name);
  const d = config.hiddenSize;
  for (const device of DEVICES) {
    Deno.test(`${name} on ${device}: zero steering vectors leave logits and greedy tokens bit-identical`, async () => {
      const plain = await fixtureHandle(name, device);
      const steered = await fixtureHandle(name, device, STEERED);
      const [ids] = chatIds(plain, ["Tell me a fun fact about octopuses."]);
      const zero = values(d, []);
      const a = await lastLogits(plain, ids);
      const b = await lastLogits(steered, ids, zero);
      assertBytesEqual(b, a, "logits");
      assertEquals(
        await generate(steered, ids, { maxNewTokens: 6, steering: zero }),
        await generate(plain, ids, { maxNewTokens: 6 }),
      );
    });

    Deno.test(`${name} on ${device}: each intervention, and all at once, match the f64 reference`, async () => {
      const steered = await fixtureHandle(name, device, STEERED);
      const [ids] = chatIds(steered, ["Explain recursion to a ten-year-old."]);
      const unsteered = referenceForward(config, weights, ids, { withLogits: true });
      for (const active of [...EACH_ALONE, ALL_AT_ONCE]) {
        const steering = values(d, active);
        const logits = await lastLogits(steered, ids, steering);
        const reference = referenceForward(config, weights, ids, {
          withLogits: true,
          afterLayer: referenceHook(steering, active),
        });
        const vocab = config.vocabSize;
        for (const t of [0, ids.length - 1]) {
          const row = logits.subarray(t * vocab, (t + 1) * vocab);
          assertClose(row, reference.logits[t], { ...LOGITS_PER_ELEMENT, label: `sites ${active} token ${t}` });
        }
        const changed = worstRelativeError([[reference.logits.at(-1)!, unsteered.logits.at(-1)!]]);
        assert(changed > 100 * LOGIT_TOLERANCE, `sites ${active} change the logits (${changed})`);
      }
    });

    Deno.test(`${name} on ${device}: greedy generation under addition differs and equals a steered reference decode`, async () => {
      const steered = await fixtureHandle(name, device, STEERED);
      const [ids] = chatIds(steered, ["What is the capital of France?"]);
      const steering = values(d, [0]);
      const tokens = await generate(steered, ids, { maxNewTokens: 8, steering });
      const unsteered = await generate(steered, ids, { maxNewTokens: 8, steering: values(d, []) });
      assert(tokens.join() !== unsteered.join(), "steering changes the generation");
      // Reference decode without KV cache: a full forward per step, the intervention at every position.
      const sequence = [...ids];
      for (let step = 0; step < tokens.length; step++) {
        const { logits } = referenceForward(config, weights, sequence, {
          withLogits: true,
          logitsFrom: sequence.length - 1,
          afterLayer: referenceHook(steering, [0]),
        });
        sequence.push(argmax(logits[0]));
      }
      assertEquals(tokens, sequence.slice(ids.length));
    });
  }
}
