/**
 * Every task on the families beyond the demo's: Qwen2 (Qwen2.5's ChatML with its default system
 * message), Qwen3 (ChatML) and Mistral (Mistral-Instruct's `[INST] … [/INST]`), each a base and a chat
 * checkpoint with its real tokenizer, the base's config.json saved as transformers 5 writes it. The
 * numbers of each task are checked against references elsewhere (on the demo families); here each task
 * must run to the end, read at the template's header and write its outputs. The SAE and crosscoder are
 * the Llama fixtures' (the same 64-wide residual stream).
 */

import { assert, assertEquals, assertMatch } from "../assert.ts";
import { join } from "node:path";
import { ensureFixtureCrosscoder, ensureFixtureModel, ensureFixtureSae } from "../../lib/fixtures/build.ts";
import { DEMO_PROMPTS } from "../../lib/fixtures/prompts.ts";
import { openSafetensors } from "../../lib/io/safetensors_file.ts";
import { meaningfulLines, runScript } from "../helpers.ts";
import { tempDir } from "../temp.ts";

const FAMILIES = ["qwen2", "qwen3", "mistral"];

/** stderr lines that report a problem (progress bars and the runtime's notes are not). */
const errorLines = (stderr: string) => meaningfulLines(stderr).filter((l) => /error|warning|fail/i.test(l));

for (const family of FAMILIES) {
  Deno.test(`${family}: capture, diff, sweep-layers, steer, kl, adl and crosscoder run end to end (cpu)`, async () => {
    const base = await ensureFixtureModel(`tiny-${family}-base-hf`);
    const chat = await ensureFixtureModel(`tiny-${family}-hf`);
    const sae = await ensureFixtureSae("tiny-llama-sae-saelens");
    const crosscoder = await ensureFixtureCrosscoder("tiny-llama-crosscoder-L2-k4");
    const out = await tempDir(`families-${family}-`);
    const prompts = join(out, "prompts.txt");
    await Deno.writeTextFile(prompts, DEMO_PROMPTS.slice(0, 3).join("\n") + "\n");
    const cpu = ["--device", "cpu"];
    const run = async (script: string, args: string[]) => {
      const result = await runScript(script, [...args, ...cpu]);
      assertEquals(result.code, 0, `${family} ${script}: ${result.stderr}`);
      assertEquals(errorLines(result.stderr), [], `${family} ${script}`);
      return result;
    };

    await run("capture.ts", [
      ...["--model", chat, "--prompts", prompts, "--layers", "1,3", "--positions", "asst,endheader,newline"],
      ...["--out", join(out, "capture.safetensors")],
    ]);
    const capture = await openSafetensors(join(out, "capture.safetensors"));
    assertEquals(Object.keys(capture.tensors).sort(), ["resid_post.1", "resid_post.3"]);
    assertEquals(capture.tensors["resid_post.1"].shape, [3, 3, 64]);

    const diff = await run("diff.ts", [
      ...["--base", base, "--chat", chat, "--sae", sae, "--layer", "2", "--prompts", prompts],
      ...["--out-dir", join(out, "diff"), "--cards", "2"],
    ]);
    assertMatch(diff.stdout, /feature_increases\.html/);
    // Every prompt found the template's header: no fallback to the last token.
    assertMatch(diff.stdout, /3 prompts; header not found in 0 /);
    for (const file of ["top_all_mean.csv", "stats_base.safetensors", "stats_chat.safetensors", "features.html"]) {
      await Deno.stat(join(out, "diff", file));
    }

    await run("sweep_layers.ts", [
      ...["--model", chat, "--prompts", prompts, "--position", "endheader", "--out-dir", join(out, "sweep")],
    ]);
    const vectors = await openSafetensors(join(out, "sweep", "contrast_vectors.safetensors"));
    for (let layer = 0; layer < 4; layer++) assert(`contrast.${layer}` in vectors.tensors, `contrast.${layer}`);

    await run("steer.ts", [
      ...["--model", chat, "--layer", "2", "--vector", join(out, "sweep", "contrast_vectors.safetensors")],
      ...["--prompts", prompts, "--mag", "-3,3", "--greedy", "--max-new-tokens", "3", "--out-dir", join(out, "sweep")],
    ]);
    const steered = (await Array.fromAsync(Deno.readDir(join(out, "sweep")))).find((e) =>
      e.name.endsWith("_steer.json")
    );
    assert(steered, "a steering results file");
    const results = JSON.parse(await Deno.readTextFile(join(out, "sweep", steered.name)));
    assertEquals(Object.keys(results).length, 3);

    await run("kl.ts", ["--base", base, "--chat", chat, "--prompts", prompts, "--out-dir", join(out, "kl")]);
    await run("adl.ts", [
      ...["--base", base, "--chat", chat, "--layer", "2", "--prompts", prompts, "--first-n", "4"],
      ...["--out-dir", join(out, "adl")],
    ]);
    await run("crosscoder.ts", [
      ...["--base", base, "--chat", chat, "--crosscoder", crosscoder, "--prompts", prompts],
      ...["--out-dir", join(out, "crosscoder")],
    ]);
  });
}
