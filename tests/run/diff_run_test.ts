import { assert, assertEquals, assertMatch } from "../assert.ts";
import { tempDir } from "../temp.ts";
import { join } from "node:path";
import { TOKEN_TYPES } from "../../lib/runtime/chat.ts";
import { collectStats } from "../../lib/analysis/collect.ts";
import { fileCheckpoint, readStats, writeStats } from "../../lib/run/stats_files.ts";
import { UserError } from "../../lib/core/errors.ts";
import type { GpuSaeEncoder } from "../../lib/kernels/sae_encode.ts";
import { collectDiff, diffFingerprint, mergeDiffShards } from "../../lib/run/diff_run.ts";
import { statsPath } from "../../lib/run/stats_files.ts";
import { FeatureStats, METRICS } from "../../lib/features/stats.ts";
import { assertSameTopExamples } from "../reference_stats.ts";
import { fixtureDiffOptions } from "../helpers.ts";

const options = fixtureDiffOptions;

Deno.test("shards of 5 and 6 prompts (batch size 4, so both end on a partial batch) merge to one run's statistics within 1e-6 relative", async () => {
  const dir = await tempDir("diff-run-");
  try {
    const whole = join(dir, "whole");
    const sharded = join(dir, "sharded");
    await collectDiff(await options(whole));
    await collectDiff({ ...await options(sharded), shard: { index: 0, count: 2, start: 0, end: 5 } });
    await collectDiff({ ...await options(sharded), shard: { index: 1, count: 2, start: 5, end: 11 } });
    assertEquals(await mergeDiffShards(sharded), { shards: 2, prompts: 11 });
    let worst = 0;
    for (const model of ["base", "chat"] as const) {
      const one = (await readStats(statsPath(whole, model))).stats.finalize();
      const merged = await readStats(statsPath(sharded, model));
      assertEquals(merged.metadata.num_prompts, 11);
      const two = merged.stats.finalize();
      for (const type of TOKEN_TYPES) {
        for (const metric of METRICS) {
          const [a, b] = [two[type][metric], one[type][metric]];
          for (let j = 0; j < b.length; j++) {
            const error = Math.abs(a[j] - b[j]);
            worst = Math.max(worst, error / Math.max(Math.abs(b[j]), 1e-30));
            assert(
              error <= 1e-6 * Math.abs(b[j]) + 1e-12,
              `${model} ${type} ${metric}[${j}]: merged ${a[j]} vs one run ${b[j]}`,
            );
          }
        }
      }
    }
    console.log(`worst relative difference ${worst}`);
    for (const model of ["base", "chat"] as const) {
      const one = (await readStats(statsPath(whole, model))).examples!;
      const merged = (await readStats(statsPath(sharded, model))).examples!;
      assertSameTopExamples(merged, one, `${model}: merged shards' top examples vs one run`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a checkpoint of another run is refused on --resume, in one line naming it", async () => {
  const dir = await tempDir("diff-checkpoint-");
  try {
    const path = join(dir, "checkpoint_base.safetensors");
    await writeStats(path, FeatureStats.empty(["asst"], 4), {
      run_fingerprint: "another-run:base:all",
      next_prompt: 4,
      token_types: ["asst"],
      num_features: 4,
    });
    // Refused before any model or encoder is touched.
    const unused = {} as never;
    const refused = await collectStats({
      handle: unused,
      encoder: { sae: { config: { dIn: 8, dSae: 4 } } } as unknown as GpuSaeEncoder,
      layer: 0,
      prompts: [],
      tokenTypes: ["asst"],
      batchSize: 4,
      checkpointEvery: 1,
      checkpoint: fileCheckpoint(path),
      fingerprint: "this-run:base:all",
      resume: true,
    }).then(() => undefined, (error: unknown) => error);
    assert(refused instanceof UserError, String(refused));
    assertMatch(refused.message, /checkpoint_base\.safetensors belongs to another run/);
    assert(!refused.message.includes("\n"), "one line");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the run fingerprint covers what the chat template renders (a template that writes today's date)", async () => {
  const parts = {
    prompts: ["a", "b"],
    base: "b1",
    chat: "c1",
    sae: "s1",
    layer: 2,
    tokenTypes: ["asst"],
    batchSize: 4,
    maxLength: 512,
    topExamples: 10,
    device: "cpu",
  };
  const today = await diffFingerprint({ ...parts, template: "Today Date: 07 Dec 2026\nprobe" });
  assertEquals(await diffFingerprint({ ...parts, template: "Today Date: 07 Dec 2026\nprobe" }), today);
  assert(await diffFingerprint({ ...parts, template: "Today Date: 08 Dec 2026\nprobe" }) !== today);
});
