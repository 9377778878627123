/// <reference lib="dom" />
/**
 * The diff in the page (headless Chromium, SwiftShader WebGPU), fed the built-in Llama base/chat
 * checkpoints, an SAE and the demo prompts through its file inputs, against `deno task diff --device
 * webgpu` on the same inputs (Deno's WebGPU on lavapipe here).
 *
 * The two runs are on different adapters (SwiftShader vs lavapipe), whose f32 matmuls round
 * differently, so the statistics are compared per element: measured, the largest relative difference
 * of any accumulator is below 2e-3 (absolute floor 1e-4, for sums near zero); the tolerance is 1e-2
 * relative. The run's fingerprint, both model identities and the SAE identity must be equal (the
 * page computes the CLI's keys), the top lists the same (identical but where two values lie within the
 * tolerance, which the two adapters may order either way), and the planted features recovered as the
 * CLI demo recovers them.
 */

import { assert, assertEquals } from "../assert.ts";
import { join } from "node:path";
import { tempDir } from "../temp.ts";
import { ensureFixtureModel, ensureFixtureSae } from "../../lib/fixtures/build.ts";
import { DEMO_PROMPTS } from "../../lib/fixtures/prompts.ts";
import { readRunStats } from "../../lib/run/stats_files.ts";
import { plantRecovery } from "../../lib/fixtures/plant.ts";
import { writeDiffTables } from "../../lib/report/diff.ts";
import { openSite, pickFolder, waitForState } from "./harness.ts";

/** The page's downloads: name → bytes (read back from their blob URLs). */
async function downloads(page: import("playwright-core").Page): Promise<Map<string, Uint8Array>> {
  const files = await page.evaluate(async () => {
    const links = [...document.querySelectorAll<HTMLAnchorElement>("#downloads a")];
    return await Promise.all(links.map(async (a) => {
      const bytes = new Uint8Array(await (await fetch(a.href)).arrayBuffer());
      return [a.download, Array.from(bytes)] as [string, number[]];
    }));
  });
  return new Map(files.map(([name, bytes]) => [name, new Uint8Array(bytes)]));
}

/** A top_*.csv's rows: read position, rank, feature and the ranked value (the diff column). */
function topRows(csv: string): { token: string; rank: number; feature: number; value: number }[] {
  return csv.trim().split("\n").slice(1).map((line) => {
    const cells = line.split(",");
    return { rank: Number(cells[0]), feature: Number(cells[1]), token: cells[2], value: Number(cells[5]) };
  });
}

/**
 * Whether the page's list ranks as the CLI's: the same features at the same ranks, except where two
 * features' values are within `tolerance` of each other (then the two adapters' last bits may order
 * them either way; the values of the feature the page puts at a rank and the one the CLI does must agree).
 */
function sameRanking(cli: string, page: string, tolerance: number): string[] {
  const cliRows = topRows(cli);
  const at = new Map(cliRows.map((r) => [`${r.token}:${r.rank}`, r]));
  const problems: string[] = [];
  for (const row of topRows(page)) {
    const expected = at.get(`${row.token}:${row.rank}`);
    if (!expected) {
      problems.push(`${row.token} rank ${row.rank}: not in the CLI's list`);
    } else if (expected.feature !== row.feature) {
      const close = Math.abs(expected.value - row.value) <= tolerance * Math.max(Math.abs(expected.value), 1e-4);
      if (!close) {
        problems.push(`${row.token} rank ${row.rank}: feature ${row.feature} vs the CLI's ${expected.feature}`);
      }
    }
  }
  if (topRows(page).length !== cliRows.length) problems.push("the lists differ in length");
  return problems;
}

Deno.test("the page's diff equals the CLI's webgpu run: statistics within 1e-2 (measured < 2e-3), same keys, same top lists up to near-ties, plants recovered", async () => {
  const dir = await tempDir("web-diff");
  const [base, chat, sae] = [
    await ensureFixtureModel("tiny-llama-base"),
    await ensureFixtureModel("tiny-llama-chat"),
    await ensureFixtureSae("tiny-llama-sae-llamascope"),
  ];
  const cliDir = join(dir, "cli");
  const cli = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "scripts/diff.ts",
      "--device",
      "webgpu",
      "--cards",
      "0",
      "--out-dir",
      cliDir,
      "--base",
      base,
      "--chat",
      chat,
      "--sae",
      sae,
    ],
    cwd: new URL("../../", import.meta.url),
  }).output();
  assertEquals(cli.code, 0, new TextDecoder().decode(cli.stderr));

  const promptFile = join(dir, "prompts.txt");
  await Deno.writeTextFile(promptFile, DEMO_PROMPTS.join("\n") + "\n");
  const session = await openSite();
  let files: Map<string, Uint8Array>;
  try {
    const { page } = session;
    assertEquals(await waitForState(page, ["idle", "nogpu", "error"]), "idle");
    await pickFolder(page, "#base-folder", base);
    await pickFolder(page, "#chat-folder", chat);
    await pickFolder(page, "#sae-folder", sae);
    await page.locator("#prompts-file").setInputFiles(promptFile);
    await page.locator("#run").click();
    const state = await waitForState(page, ["done", "error"], 300_000);
    assertEquals(state, "done", await page.locator("#error").innerText());
    files = await downloads(page);
    assertEquals(session.errors, []);
    const origin = new URL(session.server.url).origin;
    assertEquals(session.requests.filter((url) => !url.startsWith(origin) && !url.startsWith("blob:")), []);
    // MODEL_DIFF_SCREENSHOT=docs/web-page.png refreshes the README's picture of a finished run.
    const screenshot = Deno.env.get("MODEL_DIFF_SCREENSHOT");
    if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
  } finally {
    await session.close();
  }

  for (
    const name of ["stats_base.safetensors", "stats_chat.safetensors", "top_all_mean.csv", "feature_increases.html"]
  ) {
    assert(files.has(name), `the page offers ${name}`);
  }
  const pageDir = join(dir, "page");
  await Deno.mkdir(pageDir);
  for (const [name, bytes] of files) await Deno.writeFile(join(pageDir, name), bytes);
  assertEquals(
    await Deno.readTextFile(join(pageDir, "prompts.json")),
    await Deno.readTextFile(join(cliDir, "prompts.json")),
  );

  const stats = { base: {}, chat: {} } as Record<"base" | "chat", Awaited<ReturnType<typeof readRunStats>>>;
  let worst = 0;
  for (const model of ["base", "chat"] as const) {
    const [a, b] = await Promise.all([cliDir, pageDir].map((d) => readRunStats(join(d, `stats_${model}.safetensors`))));
    stats[model] = b;
    for (
      const key of ["run_fingerprint", "model_identity", "sae_identity", "num_prompts", "sae_layer", "dtype"] as const
    ) {
      assertEquals(b.metadata[key], a.metadata[key], `${model}: ${key}`);
    }
    const [ta, tb] = [a.stats.toTensors(), b.stats.toTensors()];
    for (const [name, tensor] of Object.entries(ta)) {
      const x = new Float64Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength / 8);
      const other = tb[name].data;
      const y = new Float64Array(other.buffer, other.byteOffset, other.byteLength / 8);
      assertEquals(y.length, x.length, name);
      for (let i = 0; i < x.length; i++) {
        const relative = Math.abs(x[i] - y[i]) / Math.max(Math.abs(x[i]), 1e-4);
        worst = Math.max(worst, relative);
        assert(relative <= 1e-2, `${model} ${name}[${i}]: page ${y[i]} vs CLI ${x[i]}`);
      }
    }
  }
  console.log(`largest relative difference of any statistic, page vs CLI: ${worst.toExponential(2)}`);
  let swaps = 0;
  for (const metric of ["all_mean", "active_mean", "sparsity"]) {
    const [a, b] = await Promise.all([cliDir, pageDir].map((d) => Deno.readTextFile(join(d, `top_${metric}.csv`))));
    assertEquals(sameRanking(a, b, 1e-2), [], `top_${metric}.csv`);
    swaps += topRows(a).filter((r, i) => r.feature !== topRows(b)[i]?.feature).length;
  }
  console.log(`rows the page orders otherwise than the CLI (near-equal values): ${swaps}`);
  const memory = { label: (n: string) => n, write: () => Promise.resolve(), plotlyJs: () => Promise.resolve("") };
  const labels = { base: "the page's stats_base", chat: "the page's stats_chat" };
  const { tables } = await writeDiffTables(stats, memory, { topK: 100, decreases: false, labels });
  const recovered = plantRecovery(tables.all_mean, "llama");
  assertEquals(recovered.recovered, recovered.planted);
  assert(recovered.planted > 0);
});
