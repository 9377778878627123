import { assert, assertEquals } from "../assert.ts";
import { UserError } from "../../lib/core/errors.ts";
import { acquireGpu, type Gpu } from "../../lib/backend/gpu.ts";
import { storageBuffer } from "../../lib/kernels/shader.ts";
import { TopRowLists } from "../../lib/kernels/top_rows.ts";
import { SeededRandom } from "../../lib/core/random.ts";
import { TopExamples } from "../../lib/features/top_examples.ts";
import { referenceTopExamples } from "../reference_stats.ts";

const TYPES = ["asst", "endheader", "newline"];

/** Runs `batches` through the kernel into `lists`, read back into `into` after the batches named in `flushAfter`. */
async function run(
  gpu: Gpu,
  lists: TopRowLists,
  into: TopExamples,
  batches: { f: Float32Array; rowType: Uint32Array; rowPrompt: Uint32Array }[],
  flushAfter: Set<number>,
) {
  for (const [i, batch] of batches.entries()) {
    const encoder = gpu.device.createCommandEncoder();
    const buffers = [
      storageBuffer(gpu, batch.f),
      storageBuffer(gpu, batch.rowType),
      storageBuffer(gpu, batch.rowPrompt),
    ];
    const params = await lists.record(encoder, {
      features: buffers[0],
      rowTypes: buffers[1],
      rowPrompts: buffers[2],
      rows: batch.rowType.length,
    });
    gpu.device.queue.submit([encoder.finish()]);
    for (const buffer of [...buffers, params]) buffer.destroy();
    if (flushAfter.has(i)) await lists.flushInto(into);
  }
  await lists.flushInto(into);
}

Deno.test("top_rows equals a plain sort with ties to the lower prompt, across batches and read-backs, for k = 1, 3 and beyond the rows", async () => {
  const gpu = await acquireGpu();
  const random = new SeededRandom(12);
  // 70 features: not a multiple of the 64 threads of a workgroup.
  const [dSae, perBatch, count] = [70, 5, 4];
  const prompts = Array.from({ length: perBatch * count }, (_, i) => i);
  for (let i = prompts.length - 1; i > 0; i--) {
    const j = Math.floor(random.uniform() * (i + 1));
    [prompts[i], prompts[j]] = [prompts[j], prompts[i]];
  }
  const batches = Array.from({ length: count }, (_, b) => {
    const rows = perBatch * TYPES.length;
    return {
      // A grid of halves: many exact ties; a third zero or negative.
      f: Float32Array.from({ length: rows * dSae }, () => Math.round(6 * random.uniform()) / 2 - 1),
      rowType: Uint32Array.from({ length: rows }, (_, r) => r % TYPES.length),
      rowPrompt: Uint32Array.from({ length: rows }, (_, r) => prompts[b * perBatch + Math.floor(r / TYPES.length)]),
    };
  });
  for (const k of [1, 3, 25]) {
    for (const flushAfter of [new Set<number>(), new Set([1])]) {
      const lists = new TopRowLists(gpu, TYPES, dSae, k);
      const ours = TopExamples.empty(TYPES, dSae, k);
      await run(gpu, lists, ours, batches, flushAfter);
      lists.destroy();
      for (const [t, type] of TYPES.entries()) {
        const rows: Float32Array[] = [];
        const ids: number[] = [];
        for (const batch of batches) {
          batch.rowType.forEach((rowType, r) => {
            if (rowType !== t) return;
            rows.push(batch.f.subarray(r * dSae, (r + 1) * dSae));
            ids.push(batch.rowPrompt[r]);
          });
        }
        const expected = referenceTopExamples(rows, ids);
        for (let j = 0; j < dSae; j++) {
          assertEquals(
            ours.list(t, j),
            expected[j].slice(0, k),
            `k ${k}, read back after ${[...flushAfter]}, ${type} ${j}`,
          );
        }
      }
    }
  }
});

Deno.test("top_rows lists larger than one storage binding are refused in one line naming --top-examples", async () => {
  const gpu = await acquireGpu();
  try {
    new TopRowLists({ ...gpu, maxStorageBufferBindingSize: 2 ** 20 }, TYPES, 131072, 10);
    throw new Error("expected a refusal");
  } catch (error) {
    assert(error instanceof UserError, String(error));
    assert(
      /--top-examples 10 needs 15 MiB .* over this adapter's 1 MiB binding limit/.test(error.message),
      error.message,
    );
  }
});
