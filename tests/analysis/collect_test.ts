import { assert, assertEquals } from "../assert.ts";
import { tempDir } from "../temp.ts";
import { randomSae } from "../random_sae.ts";
import { join } from "node:path";
import { loadForCapture } from "../../lib/runtime/runtime.ts";
import { preparePrompts, TOKEN_TYPES } from "../../lib/runtime/chat.ts";
import { fileCheckpoint } from "../../lib/run/stats_files.ts";
import { type Collected, collectStats } from "../../lib/analysis/collect.ts";
import { ensureFixtureModel } from "../../lib/fixtures/build.ts";
import { DEMO_PROMPTS } from "../../lib/fixtures/prompts.ts";
import { acquireGpu } from "../../lib/backend/gpu.ts";
import { GpuSaeEncoder } from "../../lib/kernels/sae_encode.ts";
import type { ModelHandle } from "../../lib/runtime/runtime.ts";

const LAYER = 1;
const PROMPTS = DEMO_PROMPTS.slice(0, 11);

/** The fixture cut after LAYER on webgpu, its residuals read back (host path) or left on the GPU. */
async function handles(): Promise<{ host: ModelHandle; device: ModelHandle }> {
  const dir = await ensureFixtureModel("tiny-gemma2-chat");
  const load = (outputsOnGpu: boolean) =>
    loadForCapture(dir, [LAYER], { device: "webgpu", dtype: "fp32", cut: true, outputsOnGpu });
  return { host: await load(false), device: await load(true) };
}

/** Every number a collection gathered: statistics and top examples (values and prompts). */
function tensors({ stats, examples }: Collected): Record<string, number[]> {
  return Object.fromEntries(
    Object.entries({ ...stats.toTensors(), ...examples?.toTensors() }).map((
      [name, t],
    ) => [name, [...(t.data as Float64Array | Float32Array | Uint32Array)]]),
  );
}

Deno.test("shared-device pipeline: statistics and top examples bit-identical to the host path (TopK with b_dec, JumpReLU), across queue flushes, checkpoints and resume", async () => {
  const { host, device } = await handles();
  assert(device.outputsOnGpu && !host.outputsOnGpu, "one handle keeps residuals on the GPU, the other not");
  const prompts = preparePrompts(host, PROMPTS, { maxLength: 512, types: [...TOKEN_TYPES] });
  const dModel = Number(host.config.hidden_size);
  const gpu = await acquireGpu();
  const dir = await tempDir("collect-");
  try {
    for (const [architecture, applyBDec] of [["topk", true], ["jumprelu", false]] as const) {
      const sae = randomSae(dModel, 300, architecture, 5, applyBDec);
      // Two slots: 3 batches of 4 prompts force a read-back in the middle of the run.
      const encoder = await GpuSaeEncoder.create(gpu, sae, { queueBytes: 2 * 3 * 9 * 300 * 4 + 512 });
      const run = (handle: ModelHandle, extra: { checkpointEvery?: number; resume?: boolean; path?: string } = {}) =>
        collectStats({
          handle,
          encoder,
          layer: LAYER,
          prompts,
          tokenTypes: TOKEN_TYPES,
          batchSize: 4,
          checkpointEvery: extra.checkpointEvery ?? 0,
          checkpoint: fileCheckpoint(extra.path ?? join(dir, "unused.safetensors")),
          fingerprint: `${architecture}`,
          resume: extra.resume ?? false,
          topExamples: 4,
          // A shard's prompts: the lists hold the run's indices.
          firstPrompt: 100,
        });
      const expected = tensors(await run(host));
      assertEquals(expected.count, TOKEN_TYPES.map(() => PROMPTS.length), "every prompt counted at every token type");
      assert(expected[`${TOKEN_TYPES[0]}.accumulators`].some((v) => v !== 0), "some feature fires");
      const listed = expected[`${TOKEN_TYPES[0]}.top_prompts`].filter((p) => p !== 0xffffffff);
      assert(listed.length > 0 && listed.every((p) => p >= 100 && p < 100 + PROMPTS.length), "global prompt indices");
      assertEquals(tensors(await run(device)), expected, `${architecture}: on-device statistics equal the host path's`);
      // Each checkpoint must hold every batch before it (the queue flushed before writing), so resuming
      // from the last one gives the same statistics again.
      const path = join(dir, `${architecture}.checkpoint.safetensors`);
      await run(device, { checkpointEvery: 1, path });
      assertEquals(tensors(await run(device, { resume: true, path })), expected, `${architecture}: resumed on device`);
      encoder.destroy();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
