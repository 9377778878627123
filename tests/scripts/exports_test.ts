/**
 * The tasks run on ONNX exports as they run on Hugging Face checkpoints (the demo fixtures): the sweep
 * and steering with the vector it saved on an Optimum export with inline weights, and a diff of an
 * Optimum export pair with external data (capture is in capture_test.ts).
 */

import { assert, assertEquals } from "../assert.ts";
import { tempDir } from "../temp.ts";
import { join } from "node:path";
import { parse } from "csv-parse/sync";
import { readStats } from "../../lib/run/stats_files.ts";
import { ensureFixtureModel, ensureFixtureSae } from "../../lib/fixtures/build.ts";
import { runScript } from "../helpers.ts";

Deno.test("sweep-layers, steer and diff run end to end on ONNX exports", async () => {
  const out = await tempDir("checkpoint-scripts-");
  try {
    const gemma = await ensureFixtureModel("tiny-gemma2-chat-optimum");
    const prompts = join(out, "prompts.txt");
    await Deno.writeTextFile(prompts, "Who are you?\nWhat is your job?\nTell me a joke.\n");
    const sweep = await runScript("sweep_layers.ts", [
      ...["--model", gemma, "--prompts", prompts, "--out-dir", out, "--device", "cpu"],
    ]);
    assertEquals(sweep.code, 0, sweep.stderr);
    const rows = parse(await Deno.readTextFile(join(out, "layer_similarity.csv")), { columns: true });
    assertEquals(rows.length, 4);

    const steer = await runScript("steer.ts", [
      ...["--model", gemma, "--out-dir", out, "--layer", "2", "--mag", "3", "--greedy", "--max-new-tokens", "2"],
      ...["--prompts", prompts],
      ...["--device", "cpu", "--model-short", "gemma-export"],
    ]);
    assertEquals(steer.code, 0, steer.stderr);
    const results = JSON.parse(await Deno.readTextFile(join(out, "gemma-export_layer2_steer.json")));
    assert(Object.values(results).every((byMagnitude) => Object.keys(byMagnitude as object).join() === "3"));

    const diffDir = join(out, "diff");
    const diff = await runScript("diff.ts", [
      ...[
        "--base",
        await ensureFixtureModel("tiny-llama-base-optimum"),
        "--chat",
        await ensureFixtureModel("tiny-llama-chat-optimum"),
      ],
      ...["--sae", await ensureFixtureSae("tiny-llama-sae-saelens"), "--layer", "2", "--n", "2", "--top-k", "5"],
      ...["--out-dir", diffDir, "--device", "cpu"],
    ]);
    assertEquals(diff.code, 0, diff.stderr);
    assertEquals((await readStats(join(diffDir, "stats_chat.safetensors"))).metadata.num_prompts, 2);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});
