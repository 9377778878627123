/// <reference lib="dom" />
/// <reference lib="dom.asynciterable" />
/**
 * Resuming in the page (headless Chromium, SwiftShader WebGPU): the built-in Llama pair, the Llama
 * Scope SAE and 4 of the demo prompts at batch size 1 with a checkpoint after every batch. A run reloaded
 * away while the chat model is being collected leaves that model's checkpoint in the origin-private
 * file system under the run's fingerprint; the same inputs picked again resume from it (the log says
 * so) to statistics bit-identical to an uninterrupted run in the same page; other inputs never use it;
 * it is removed once the model's statistics are made. Cancel stops at the next batch with the one line
 * "cancelled", and the next Run resumes from the checkpoint it left.
 */

import { assert, assertBytesEqual, assertEquals } from "../assert.ts";
import { join } from "node:path";
import { tempDir } from "../temp.ts";
import { ensureFixtureModel, ensureFixtureSae } from "../../lib/fixtures/build.ts";
import { DEMO_PROMPTS } from "../../lib/fixtures/prompts.ts";
import { chatUnderway, checkpoints, downloads, openSite, pickFolder, waitForState } from "./harness.ts";

Deno.test("the page resumes after a reload and after Cancel, bit-identical; other inputs never use the checkpoint", async () => {
  const [base, chat, sae] = [
    await ensureFixtureModel("tiny-llama-base"),
    await ensureFixtureModel("tiny-llama-chat"),
    await ensureFixtureSae("tiny-llama-sae-llamascope"),
  ];
  const prompts = join(await tempDir("resume-"), "prompts.txt");
  await Deno.writeTextFile(prompts, DEMO_PROMPTS.join("\n") + "\n");

  const session = await openSite();
  try {
    const { page } = session;
    /** Picks the run's inputs (again after a reload): 4 of the prompts (4 batches per model), or `n`. */
    const pick = async (n = "4") => {
      assertEquals(await waitForState(page, ["idle", "nogpu", "error", "done"]), "idle");
      await pickFolder(page, "#base-folder", base);
      await pickFolder(page, "#chat-folder", chat);
      await pickFolder(page, "#sae-folder", sae);
      await page.locator("#prompts-file").setInputFiles(prompts);
      await page.locator("#batch-size").fill("1");
      await page.locator("#checkpoint-every").fill("1");
      await page.locator("#n").fill(n);
    };
    const t0 = performance.now();
    const stage = (what: string) => console.log(`${((performance.now() - t0) / 1000).toFixed(1)} s: ${what}`);
    const start = async () => {
      stage("run");
      await page.evaluate(() => document.body.dataset.state = "pressed");
      await page.locator("#run").click();
    };
    /** Runs to the end; the page's log. */
    const finish = async () => {
      const state = await waitForState(page, ["done", "error", "idle"], 300_000);
      assertEquals(state, "done", await page.locator("#error").innerText());
      return await page.locator("#log").innerText();
    };
    const stats = async () => {
      const files = await downloads(page);
      return ["stats_base.safetensors", "stats_chat.safetensors", "top_all_mean.csv"].map((name) => {
        assert(files.has(name), `the page offers ${name}`);
        return files.get(name)!;
      });
    };
    const sameStats = async (expected: Uint8Array[], what: string) => {
      const got = await stats();
      expected.forEach((bytes, i) => assertBytesEqual(got[i], bytes, `${what}: file ${i}`));
    };

    // The uninterrupted run; its checkpoints are all removed at its end.
    await pick();
    await start();
    const log = await finish();
    assert(!log.includes("resuming"), log);
    const uninterrupted = await stats();
    assertEquals(await checkpoints(page), []);

    // The same run, reloaded away while the chat model is collected: the chat model's checkpoint stays.
    await start();
    const [done, total] = await chatUnderway(page);
    stage(`chat ${done}/${total}: reload`);
    await page.reload({ waitUntil: "load" });
    assert(done < total, `the reload came after the chat model finished (${done}/${total})`);
    const saved = await checkpoints(page);
    assertEquals(saved.length, 1, `checkpoints after the reload: ${JSON.stringify(saved)}`);
    assert(/^[0-9a-f]+-chat: \d+$/.test(saved[0]), saved[0]);

    // Other inputs (2 of the prompts: another fingerprint) neither use it nor touch it.
    await pick("2");
    await start();
    const other = await finish();
    assert(!other.includes("resuming"), other);
    assertEquals(await checkpoints(page), saved);

    // The same inputs again resume the chat model (the base model had finished: it runs again) and
    // give the uninterrupted run's bytes; the checkpoint is gone once the statistics are made.
    await page.locator("#n").fill("4");
    await start();
    const resumed = await finish();
    assert(/resuming the chat model from the page's checkpoint [0-9a-f]+-chat/.test(resumed), resumed);
    assert(!resumed.includes("resuming the base model"), resumed);
    await sameStats(uninterrupted, "resumed after a reload");
    assertEquals(await checkpoints(page), []);

    // Cancel mid-run: one line, back to idle, Run enabled, the checkpoint kept; the next Run resumes.
    await start();
    stage(`chat ${(await chatUnderway(page)).join("/")}: cancel`);
    await page.locator("#cancel").click();
    assertEquals(await waitForState(page, ["idle", "error", "done"], 60_000), "idle");
    assertEquals(await page.locator("#error").innerText(), "cancelled");
    assert(await page.locator("#run").isEnabled(), "Run is enabled after Cancel");
    assert(await page.locator("#cancel").isDisabled(), "Cancel is disabled after Cancel");
    assertEquals((await checkpoints(page)).length, 1, "a checkpoint after Cancel");
    await start();
    assert(/resuming the chat model/.test(await finish()), "resumed after Cancel");
    await sameStats(uninterrupted, "resumed after Cancel");
    assertEquals(await checkpoints(page), []);

    assertEquals(session.errors, []);
  } finally {
    await session.close();
  }
});
