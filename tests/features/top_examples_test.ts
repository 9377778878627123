import { assert, assertEquals } from "../assert.ts";
import { UserError } from "../../lib/core/errors.ts";
import { SeededRandom } from "../../lib/core/random.ts";
import { NO_PROMPT, TopExamples } from "../../lib/features/top_examples.ts";
import { assertSameTopExamples, referenceTopExamples } from "../reference_stats.ts";

const TYPES = ["asst", "endheader", "newline"];

/**
 * Batches of activations with many exact ties (values on a grid of quarters, a third of them zero
 * or negative), one row per prompt and type; prompts arrive in a shuffled order, so the tie rule
 * cannot lean on arrival order.
 */
function batches(seed: number, dSae: number, count: number, perBatch: number) {
  const random = new SeededRandom(seed);
  const prompts = Array.from({ length: count * perBatch }, (_, i) => i);
  for (let i = prompts.length - 1; i > 0; i--) {
    const j = Math.floor(random.uniform() * (i + 1));
    [prompts[i], prompts[j]] = [prompts[j], prompts[i]];
  }
  return Array.from({ length: count }, (_, b) => {
    const rows = perBatch * TYPES.length;
    const f = Float32Array.from({ length: rows * dSae }, () => Math.round(12 * random.uniform()) / 4 - 1);
    const rowType = Uint32Array.from({ length: rows }, (_, r) => r % TYPES.length);
    const promptOfRow = Uint32Array.from(
      { length: rows },
      (_, r) => prompts[b * perBatch + Math.floor(r / TYPES.length)],
    );
    return { f, rows, rowType, promptOfRow };
  });
}

/** The definition's lists (a plain sort) of every row of `data`, type `t`, feature `j`, cut at k. */
function expected(data: ReturnType<typeof batches>, dSae: number, t: number, k: number) {
  const rows: Float32Array[] = [];
  const prompts: number[] = [];
  for (const batch of data) {
    for (let r = 0; r < batch.rows; r++) {
      if (batch.rowType[r] !== t) continue;
      rows.push(batch.f.subarray(r * dSae, (r + 1) * dSae));
      prompts.push(batch.promptOfRow[r]);
    }
  }
  return referenceTopExamples(rows, prompts).map((list) => list.slice(0, k));
}

Deno.test("top examples equal a plain sort (value descending, ties to the lower prompt, positives only) for k = 1, 4 and more than there are", () => {
  const dSae = 23;
  const data = batches(4, dSae, 5, 6);
  for (const k of [1, 4, 40]) {
    const examples = TopExamples.empty(TYPES, dSae, k);
    for (const b of data) examples.addRows(b.f, b.rows, b.rowType, b.promptOfRow);
    let ties = 0;
    TYPES.forEach((_, t) => {
      const lists = expected(data, dSae, t, k);
      for (let j = 0; j < dSae; j++) {
        const ours = examples.list(t, j);
        assertEquals(ours, lists[j], `k = ${k}, type ${t}, feature ${j}`);
        assert(ours.every((e) => e.value > 0), "only positive activations");
        for (let i = 1; i < ours.length; i++) if (ours[i].value === ours[i - 1].value) ties++;
      }
    });
    if (k > 1) assert(ties > 20, `the data exercise the tie rule (${ties} ties)`);
  }
});

Deno.test("top examples: a tie keeps the lower prompt whichever arrives first; zeros, -0 and negatives never enter", () => {
  for (const order of [[7, 3, 5], [3, 5, 7], [5, 7, 3]]) {
    const examples = TopExamples.empty(["asst"], 1, 2);
    for (const prompt of order) examples.offer(0, 0, 2.5, prompt);
    examples.offer(0, 0, 0, 1);
    examples.offer(0, 0, -0, 0);
    examples.offer(0, 0, -4, 0);
    assertEquals(examples.list(0, 0), [{ value: 2.5, prompt: 3 }, { value: 2.5, prompt: 5 }], `arrival ${order}`);
  }
  const offered = TopExamples.empty(["asst"], 1, 2);
  for (const value of [0, -0, -4, NaN]) offered.offer(0, 0, value, 0);
  assertEquals(offered.list(0, 0), [], "nothing but positive activations, even into empty slots");
  const silent = TopExamples.empty(["asst"], 2, 3);
  silent.addRows(Float32Array.from([0, -1, -0, 0]), 2, new Uint32Array(2), Uint32Array.from([0, 1]));
  assertEquals([silent.list(0, 0), silent.list(0, 1)], [[], []]);
  assertEquals([...silent.prompts], new Array(6).fill(NO_PROMPT));
  assertEquals([...silent.values], new Array(6).fill(-Infinity));
});

Deno.test("top examples: shards merge into exactly the one-shot lists, in either order, and survive the tensor round trip", () => {
  const dSae = 19;
  const data = batches(8, dSae, 6, 5);
  const k = 3;
  const oneShot = TopExamples.empty(TYPES, dSae, k);
  const [a, b] = [TopExamples.empty(TYPES, dSae, k), TopExamples.empty(TYPES, dSae, k)];
  data.forEach((batch, i) => {
    oneShot.addRows(batch.f, batch.rows, batch.rowType, batch.promptOfRow);
    (i % 2 ? a : b).addRows(batch.f, batch.rows, batch.rowType, batch.promptOfRow);
  });
  const ab = a.clone();
  ab.merge(b);
  const ba = b.clone();
  ba.merge(a);
  assertSameTopExamples(ab, oneShot, "a + b");
  assertSameTopExamples(ba, oneShot, "b + a");
  const tensors = oneShot.toTensors();
  assertEquals(Object.keys(tensors), TYPES.flatMap((t) => [`${t}.top_values`, `${t}.top_prompts`]));
  const bytes = (name: string) => {
    const data = tensors[name].data;
    // Shifted by one byte, as a tensor may lie in its file.
    const shifted = new Uint8Array(data.byteLength + 1);
    shifted.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), 1);
    return shifted.subarray(1);
  };
  assertSameTopExamples(TopExamples.fromTensors(TYPES, dSae, k, bytes), oneShot, "round trip");
});

Deno.test("top examples of different shapes are refused as a user error", () => {
  const a = TopExamples.empty(TYPES, 4, 3);
  for (
    const other of [TopExamples.empty(TYPES, 4, 2), TopExamples.empty(TYPES, 5, 3), TopExamples.empty(["asst"], 4, 3)]
  ) {
    try {
      a.merge(other);
      throw new Error("expected a refusal");
    } catch (error) {
      assert(error instanceof UserError && /cannot merge top examples/.test(error.message), String(error));
    }
  }
});
