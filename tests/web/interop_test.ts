/// <reference lib="dom" />
/**
 * Resuming across the CLI and the page: a checkpoint `deno task diff --device webgpu` left when it was
 * killed, given to the page, is resumed by the page; a checkpoint the page kept when cancelled,
 * downloaded into a run's `--out-dir`, is resumed by `deno task diff --resume`. Both are the same file
 * (lib/analysis/stats_file.ts) under the same run fingerprint; a checkpoint of other inputs is refused in one
 * line. Each resumed run counts every prompt once:
 * its statistics' row counts are the run's prompts, no more, no fewer.
 */

import { assert, assertEquals } from "../assert.ts";
import { join } from "node:path";
import { tempDir } from "../temp.ts";
import { runScript } from "../helpers.ts";
import { ensureFixtureModel, ensureFixtureSae } from "../../lib/fixtures/build.ts";
import { DEMO_PROMPTS } from "../../lib/fixtures/prompts.ts";
import { readRunStats } from "../../lib/run/stats_files.ts";
import { chatUnderway, checkpoints, downloads, openSite, pickFolder, waitForState } from "./harness.ts";

const N = 4;
const BATCH = 1;

/** The CLI's arguments for this run (the page's form holds the same). */
async function cliArgs(out: string, prompts: string): Promise<string[]> {
  return [
    "--device",
    "webgpu",
    "--base",
    await ensureFixtureModel("tiny-llama-base"),
    "--chat",
    await ensureFixtureModel("tiny-llama-chat"),
    "--sae",
    await ensureFixtureSae("tiny-llama-sae-llamascope"),
    "--prompts",
    prompts,
    "--n",
    String(N),
    "--batch-size",
    String(BATCH),
    "--checkpoint-every",
    "1",
    "--cards",
    "0",
    "--out-dir",
    out,
  ];
}

const ROOT = new URL("../../", import.meta.url);

/** Every read position of `file`'s statistics counted each of the run's prompts once. */
async function assertCountsEveryPromptOnce(file: string): Promise<void> {
  const { stats, metadata } = await readRunStats(file);
  assertEquals(metadata.num_prompts, N);
  assertEquals([...stats.toTensors().count.data as Float64Array], metadata.token_types.map(() => N), file);
}

Deno.test("a CLI checkpoint resumes in the page, and a page checkpoint resumes in the CLI; every prompt counted once", async () => {
  const dir = await tempDir("web-interop");
  const prompts = join(dir, "prompts.txt");
  await Deno.writeTextFile(prompts, DEMO_PROMPTS.join("\n") + "\n");

  // The CLI, killed after its first checkpoint.
  const killed = join(dir, "killed");
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "scripts/diff.ts", ...await cliArgs(killed, prompts)],
    cwd: ROOT,
    stdout: "null",
    stderr: "null",
  }).spawn();
  const saved = () =>
    Promise.all(
      ["base", "chat"].map((m) => Deno.readFile(join(killed, `checkpoint_${m}.safetensors`)).catch(() => null)),
    );
  for (let i = 0; i < 12000 && (await saved()).every((f) => !f); i++) await new Promise((r) => setTimeout(r, 5));
  try {
    child.kill("SIGKILL");
  } catch {
    // It ended first: the assertions below say so.
  }
  await child.status;
  const [cliBase, cliChat] = await saved();
  assert(cliBase || cliChat, "the CLI was killed after a checkpoint");

  const session = await openSite();
  try {
    const { page } = session;
    const pick = async () => {
      assertEquals(await waitForState(page, ["idle", "nogpu", "error", "done"]), "idle");
      await pickFolder(page, "#base-folder", await ensureFixtureModel("tiny-llama-base"));
      await pickFolder(page, "#chat-folder", await ensureFixtureModel("tiny-llama-chat"));
      await pickFolder(page, "#sae-folder", await ensureFixtureSae("tiny-llama-sae-llamascope"));
      await page.locator("#prompts-file").setInputFiles(prompts);
      await page.locator("#n").fill(String(N));
      await page.locator("#batch-size").fill(String(BATCH));
      await page.locator("#checkpoint-every").fill("1");
    };
    const run = async () => {
      await page.evaluate(() => document.body.dataset.state = "pressed");
      await page.locator("#run").click();
    };

    // The CLI's checkpoint, given to a run of other inputs (2 prompts): refused in one line.
    await pick();
    const given = cliChat ? "chat" : "base";
    const file = join(killed, `checkpoint_${given}.safetensors`);
    await Deno.writeFile(file, (cliChat ?? cliBase)!);
    await page.locator("#resume-files").setInputFiles(file);
    await page.locator("#n").fill("2");
    await run();
    assertEquals(await waitForState(page, ["done", "error"], 300_000), "error");
    assertEquals(
      await page.locator("#error").innerText(),
      `checkpoint_${given}.safetensors is a checkpoint of another run (other prompts, models, SAE or settings): give this run's, or none`,
    );
    assertEquals(await checkpoints(page), []);

    // Given to the same run: it resumes that model.
    await page.locator("#n").fill(String(N));
    await run();
    assertEquals(
      await waitForState(page, ["done", "error"], 300_000),
      "done",
      await page.locator("#error").innerText(),
    );
    const log = await page.locator("#log").innerText();
    assert(log.includes(`resuming the ${given} model`), log);
    const pageRun = join(dir, "page-run");
    await Deno.mkdir(pageRun);
    for (const [name, bytes] of await downloads(page)) await Deno.writeFile(join(pageRun, name), bytes);
    await assertCountsEveryPromptOnce(join(pageRun, `stats_${given}.safetensors`));

    // The page cancelled mid-chat: its checkpoint, downloaded as checkpoint_chat.safetensors, resumes in the CLI.
    await page.locator("#resume-files").setInputFiles([]);
    await run();
    await chatUnderway(page);
    await page.locator("#cancel").click();
    assertEquals(await waitForState(page, ["idle", "error", "done"], 60_000), "idle");
    assertEquals((await checkpoints(page)).length, 1);
    const offered = await page.evaluate(async () => {
      const link = document.querySelector<HTMLAnchorElement>("#checkpoint-list a")!;
      return [link.download, Array.from(new Uint8Array(await (await fetch(link.href)).arrayBuffer()))] as const;
    });
    assertEquals(offered[0], "checkpoint_chat.safetensors");
    const resumedByCli = join(dir, "cli-resumed");
    await Deno.mkdir(resumedByCli);
    await Deno.writeFile(join(resumedByCli, offered[0]), new Uint8Array(offered[1]));
    const cli = await runScript("diff.ts", [...await cliArgs(resumedByCli, prompts), "--resume"]);
    const out = cli.stdout;
    assertEquals(cli.code, 0, cli.stderr);
    // The base model had no checkpoint (it starts over); the chat model's was the page's, and taken.
    assert(out.includes("no checkpoint at") && out.includes("checkpoint_base.safetensors"), out);
    assert(!out.includes("checkpoint_chat.safetensors, so"), out);
    await assertCountsEveryPromptOnce(join(resumedByCli, "stats_chat.safetensors"));
    assertEquals(session.errors, []);
  } finally {
    await session.close();
  }
});
