/**
 * The tasks run on Hugging Face checkpoint directories as they run on ONNX exports: the sweep, steering
 * with the vector it saved, and a diff whose chat model is a checkpoint (capture is in capture_test.ts);
 * steering on a Gemma 3 checkpoint.
 */

import { assert, assertEquals } from "../assert.ts";
import { tempDir } from "../temp.ts";
import { join } from "node:path";
import { parse } from "csv-parse/sync";
import { readStats } from "../../lib/collect.ts";
import { ensureFixtureModel, ensureFixtureSae } from "../../lib/fixtures/build.ts";
import { runScript } from "../helpers.ts";

Deno.test("sweep-layers, steer and diff run end to end on Hugging Face checkpoint directories", async () => {
  const out = await tempDir("checkpoint-scripts-");
  try {
    const gemma = await ensureFixtureModel("tiny-gemma2-chat-hf");
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
      ...["--device", "cpu", "--model-short", "gemma-hf"],
    ]);
    assertEquals(steer.code, 0, steer.stderr);
    const results = JSON.parse(await Deno.readTextFile(join(out, "gemma-hf_layer2_steer.json")));
    assert(Object.values(results).every((byMagnitude) => Object.keys(byMagnitude as object).join() === "3"));

    const diffDir = join(out, "diff");
    const diff = await runScript("diff.ts", [
      ...[
        "--base",
        await ensureFixtureModel("tiny-llama-base"),
        "--chat",
        await ensureFixtureModel("tiny-llama31-chat-hf"),
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

// (A diff reads Gemma 3 at the header positions capture_test.ts checks; it adds no Gemma 3 path.)
Deno.test("steer runs end to end on a Gemma 3 checkpoint", async () => {
  const out = await tempDir("checkpoint-scripts-gemma3-");
  try {
    const gemma3 = await ensureFixtureModel("tiny-gemma3-hf");
    const prompts = join(out, "prompts.txt");
    await Deno.writeTextFile(prompts, "Who are you?\nTell me a joke.\n");
    // No vector given: steer runs the role-swap sweep of layer 2 (the global layer) first.
    const steer = await runScript("steer.ts", [
      ...["--model", gemma3, "--out-dir", out, "--layer", "2", "--mag", "3", "--greedy", "--max-new-tokens", "2"],
      ...["--prompts", prompts, "--device", "cpu", "--model-short", "gemma3-hf"],
    ]);
    assertEquals(steer.code, 0, steer.stderr);
    const results = JSON.parse(await Deno.readTextFile(join(out, "gemma3-hf_layer2_steer.json")));
    assertEquals(Object.keys(results).length, 2);
    assert(Object.values(results).every((byMagnitude) => Object.keys(byMagnitude as object).join() === "3"));
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});
