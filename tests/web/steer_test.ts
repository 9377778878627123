/// <reference lib="dom" />
/**
 * Steering in the page (headless Chromium, SwiftShader WebGPU) against `deno task steer --device webgpu`
 * (Deno's WebGPU, lavapipe here) on the steer demo's model, tiny-gemma2-chat given as a folder: the
 * role-swap contrast vector of the middle layer computed in the page, then greedy generations at -3 and
 * +3 for two of the notebook's six questions. The generations must be equal token for token (compared as the
 * decoded text the results file holds, special tokens kept), the results file and its run record the
 * CLI's (the vector's digest aside: the two adapters' f32 sums differ in the last bits, measured below),
 * the table in the page the same responses, filled in while they are generated; no console error and no
 * request off the page's origin.
 */

import { assert, assertEquals } from "../assert.ts";
import { parse as parseCsv } from "csv-parse/sync";
import { basename, join } from "node:path";
import { tempDir } from "../temp.ts";
import { runScript } from "../helpers.ts";
import { ensureFixtureModel, ensureFixtureSae } from "../../lib/fixtures/build.ts";
import { ROLE_PROMPTS } from "../../lib/fixtures/role_prompts.ts";
import { openSafetensors } from "../../lib/io/safetensors_file.ts";
import type { Page } from "playwright-core";
import { downloads, openSite, pickFolder, waitForState } from "./harness.ts";

/**
 * Tokens per response on both sides. Few: on SwiftShader each generation step at a sequence length the
 * page has not run yet costs seconds (onnxruntime-web compiles shaders per shape; measured ~5 s a token
 * for each new prompt, a repeated prompt at the next magnitude well under 1 s).
 */
const MAX_NEW_TOKENS = 4;

/**
 * Two of the notebook's six questions, on both sides: the contrast vector is their role-swap sweep,
 * and each new prompt length costs the page seconds a token (above).
 */
const PROMPTS = ROLE_PROMPTS.slice(0, 2);

Deno.test("the page's steering equals `deno task steer --greedy --mag -3,3 --device webgpu`: role-swap vector, same generations, the CLI's files", async () => {
  const dir = await tempDir("web-steer");
  const model = await ensureFixtureModel("tiny-gemma2-chat");
  const cliDir = join(dir, "cli");
  const promptFile = join(dir, "prompts.txt");
  await Deno.writeTextFile(promptFile, PROMPTS.join("\n") + "\n");
  const cli = await runScript("steer.ts", [
    "--device",
    "webgpu",
    "--model",
    model,
    "--greedy",
    "--mag",
    "-3,3",
    "--max-new-tokens",
    String(MAX_NEW_TOKENS),
    "--prompts",
    promptFile,
    "--out-dir",
    cliDir,
  ]);
  assertEquals(cli.code, 0, cli.stderr);
  const resultsName = [...Deno.readDirSync(cliDir)].map((e) => e.name).find((n) => n.endsWith("_steer.json"))!;
  assert(resultsName?.startsWith(`${basename(model)}_layer`), `the CLI wrote ${resultsName}`);

  const session = await openSite();
  let files: Map<string, Uint8Array>;
  let table: string[][];
  try {
    const { page } = session;
    assertEquals(await waitForState(page, ["idle", "nogpu", "error"]), "idle");
    await pickFolder(page, "#chat-folder", model);
    await page.locator("#prompts-text").fill(PROMPTS.join("\n"));
    await page.locator("#steer-source").selectOption("role-swap");
    await page.locator("#steer-mags").fill("-3,3");
    await page.locator("#steer-max-new-tokens").fill(String(MAX_NEW_TOKENS));
    await page.locator("#steer-greedy").check();
    await page.locator("#generate").click();
    // Streaming: a response shows in the table while the run is still going.
    await page.waitForFunction(
      () =>
        document.body.dataset.state !== "running" ||
        [...document.querySelectorAll<HTMLTableCellElement>("#steer-output td")].some((td) =>
          td.cellIndex > 0 && td.textContent
        ),
      undefined,
      { timeout: 300_000 },
    );
    assertEquals(await page.evaluate(() => document.body.dataset.state), "running", "text showed before the end");
    const state = await waitForState(page, ["done", "error"], 600_000);
    assertEquals(state, "done", await page.locator("#error").innerText());
    files = await downloads(page);
    table = await page.evaluate(() =>
      [...document.querySelectorAll("#steer-output tr")].map((tr) => [...tr.children].map((c) => c.textContent ?? ""))
    );
    assertEquals(session.errors, []);
    const origin = new URL(session.server.url).origin;
    assertEquals(session.requests.filter((url) => !url.startsWith(origin) && !url.startsWith("blob:")), []);
  } finally {
    await session.close();
  }

  for (
    const name of [resultsName, `${resultsName}.run.json`, "swapped_user_role.json", "contrast_vectors.safetensors"]
  ) {
    assert(files.has(name), `the page offers ${name} (it offers ${[...files.keys()].join(", ")})`);
  }
  const text = (name: string) => new TextDecoder().decode(files.get(name)!);
  const cliResults = JSON.parse(await Deno.readTextFile(join(cliDir, resultsName)));
  const pageResults = JSON.parse(text(resultsName));

  // The vector: the same sweep on two software adapters, equal up to f32 rounding.
  const pageDir = join(dir, "page");
  await Deno.mkdir(pageDir);
  for (const [name, bytes] of files) await Deno.writeFile(join(pageDir, name), bytes);
  const layer = Number(resultsName.match(/_layer(\d+)_steer\.json$/)![1]);
  const read = (d: string, name: string) =>
    openSafetensors(join(d, "contrast_vectors.safetensors")).then((f) => f.float32(name));
  const [cliVectors, pageVectors] = await Promise.all([cliDir, pageDir].map(async (d) => ({
    normal: await read(d, `normal_mean.${layer}`),
    swapped: await read(d, `swapped_mean.${layer}`),
    contrast: await read(d, `contrast.${layer}`),
  })));
  // Per element: each mean relative to itself (floor 1e-3); the contrast, a difference of the two means,
  // relative to the sizes of what was subtracted (its rounding error is theirs, not its own size's).
  const vectorProblems: string[] = [];
  let worstMean = 0;
  let worstContrast = 0;
  for (let i = 0; i < cliVectors.contrast.length; i++) {
    for (const which of ["normal", "swapped"] as const) {
      const relative = Math.abs(pageVectors[which][i] - cliVectors[which][i]) /
        Math.max(Math.abs(cliVectors[which][i]), 1e-3);
      worstMean = Math.max(worstMean, relative);
      if (relative > 1e-2) {
        vectorProblems.push(`${which}_mean[${i}]: page ${pageVectors[which][i]} vs CLI ${cliVectors[which][i]}`);
      }
    }
    const operands = Math.abs(cliVectors.normal[i]) + Math.abs(cliVectors.swapped[i]);
    const relative = Math.abs(pageVectors.contrast[i] - cliVectors.contrast[i]) / Math.max(operands, 1e-3);
    worstContrast = Math.max(worstContrast, relative);
    if (relative > 1e-2) {
      vectorProblems.push(`contrast[${i}]: page ${pageVectors.contrast[i]} vs CLI ${cliVectors.contrast[i]}`);
    }
  }
  console.log(
    `layer ${layer}, page vs CLI: means within ${worstMean.toExponential(2)} relative, ` +
      `contrast within ${worstContrast.toExponential(2)} of its operands`,
  );
  // The generations, response for response.
  assertEquals(Object.keys(pageResults), [...PROMPTS]);
  for (const prompt of PROMPTS) {
    assertEquals(Object.keys(pageResults[prompt]).sort(), ["-3", "3"]);
    for (const magnitude of ["-3", "3"]) {
      assertEquals(pageResults[prompt][magnitude], cliResults[prompt][magnitude], `${prompt} at ${magnitude}`);
    }
  }
  assertEquals(pageResults, cliResults);
  assert(pageResults[PROMPTS[0]]["-3"][0] !== pageResults[PROMPTS[0]]["3"][0], "the sign matters");

  // The run record: the CLI's model identity, layer, intervention and generation settings.
  const [cliRecord, pageRecord] = [
    JSON.parse(await Deno.readTextFile(join(cliDir, `${resultsName}.run.json`))),
    JSON.parse(text(`${resultsName}.run.json`)),
  ];
  assertEquals({ ...pageRecord.settings, vector: "" }, { ...cliRecord.settings, vector: "" });
  const exported = JSON.parse(text("swapped_user_role.json"));
  assertEquals(exported.results[PROMPTS[0]].steering, cliResults[PROMPTS[0]]);

  // The vector last, so a failure here still shows whether the generations agreed: within 1e-2 per
  // element (the diff test's tolerance across these two adapters is 2e-2).
  assertEquals(vectorProblems, []);

  // `deno task steer --out-dir <the page's downloads>` extends the page's run: it reads the page's contrast
  // vector (so its run record agrees) and adds only the magnitude the page did not run.
  const extend = await runScript("steer.ts", [
    "--device",
    "webgpu",
    "--model",
    model,
    "--greedy",
    "--mag",
    "-3,1,3",
    "--max-new-tokens",
    String(MAX_NEW_TOKENS),
    "--prompts",
    promptFile,
    "--resume",
    "--out-dir",
    pageDir,
  ]);
  assertEquals(extend.code, 0, extend.stderr);
  const extended = JSON.parse(await Deno.readTextFile(join(pageDir, resultsName)));
  for (const prompt of PROMPTS) {
    assertEquals(Object.keys(extended[prompt]).sort(), ["-3", "1", "3"]);
    for (const magnitude of ["-3", "3"]) assertEquals(extended[prompt][magnitude], pageResults[prompt][magnitude]);
  }

  // The table: a row per prompt, the responses under their magnitudes.
  assertEquals(table[0], ["prompt", "magnitude -3", "magnitude 3"]);
  assertEquals(table.slice(1), PROMPTS.map((p) => [p, cliResults[p]["-3"][0], cliResults[p]["3"][0]]));
});

/**
 * The ADL check's generations: one question at +3, 2 tokens. What matters there is the vector (its
 * differences are taken over the same question on both sides), and each new length costs seconds.
 */
const ADL_NEW_TOKENS = 2;
const ADL_PROMPTS = PROMPTS.slice(0, 1);

/**
 * Greedy steering in a fresh page at +3 of {@linkcode ADL_PROMPTS}, {@linkcode ADL_NEW_TOKENS} tokens each, after
 * `pick` has given the models and chosen the vector; the page's downloads (no console error on the way).
 */
async function steerAtPlusThree(pick: (page: Page) => Promise<void>): Promise<Map<string, Uint8Array>> {
  const session = await openSite();
  try {
    const { page } = session;
    assertEquals(await waitForState(page, ["idle", "nogpu", "error"]), "idle");
    await pick(page);
    await page.locator("#prompts-text").fill(ADL_PROMPTS.join("\n"));
    await page.locator("#steer-mags").fill("3");
    await page.locator("#steer-max-new-tokens").fill(String(ADL_NEW_TOKENS));
    await page.locator("#steer-greedy").check();
    await page.locator("#generate").click();
    assertEquals(
      await waitForState(page, ["done", "error"], 600_000),
      "done",
      await page.locator("#error").innerText(),
    );
    const files = await downloads(page);
    assertEquals(session.errors, []);
    return files;
  } finally {
    await session.close();
  }
}

Deno.test("the page's ADL vector equals `deno task adl`'s, and steering with it `deno task steer --vector adl_vectors.safetensors`", async () => {
  const dir = await tempDir("web-steer-adl");
  const [base, chat] = [await ensureFixtureModel("tiny-llama-base"), await ensureFixtureModel("tiny-llama-chat")];
  const promptFile = join(dir, "prompts.txt");
  await Deno.writeTextFile(promptFile, ADL_PROMPTS.join("\n") + "\n");
  const cliDir = join(dir, "cli");
  const run = async (script: string, args: string[]) => {
    const result = await runScript(script, ["--device", "webgpu", ...args]);
    assertEquals(result.code, 0, result.stderr);
  };
  await run("adl.ts", ["--base", base, "--chat", chat, "--prompts", promptFile, "--no-contrast", "--out-dir", cliDir]);
  await run("steer.ts", [
    "--model",
    chat,
    "--vector",
    join(cliDir, "adl_vectors.safetensors"),
    "--vector-name",
    "adl.asst",
    "--greedy",
    "--mag",
    "3",
    "--max-new-tokens",
    String(ADL_NEW_TOKENS),
    "--prompts",
    promptFile,
    "--out-dir",
    cliDir,
  ]);
  const resultsName = [...Deno.readDirSync(cliDir)].map((e) => e.name).find((n) => n.endsWith("_steer.json"))!;

  const files = await steerAtPlusThree(async (page) => {
    await pickFolder(page, "#base-folder", base);
    await pickFolder(page, "#chat-folder", chat);
    await page.locator("#steer-source").selectOption("adl");
  });
  assert(files.has("adl_vectors.safetensors"), `the page offers adl_vectors.safetensors (${[...files.keys()]})`);
  const pageDir = join(dir, "page");
  await Deno.mkdir(pageDir);
  for (const [name, bytes] of files) await Deno.writeFile(join(pageDir, name), bytes);
  // Every position's vector, per element: relative, with an absolute floor of 1e-2 (residual elements here
  // are of order 1, and a difference of two means loses their leading digits).
  const [cliFile, pageFile] = await Promise.all(
    [cliDir, pageDir].map((d) => openSafetensors(join(d, "adl_vectors.safetensors"))),
  );
  assertEquals(Object.keys(pageFile.tensors).sort(), Object.keys(cliFile.tensors).sort());
  let worst = 0;
  const problems: string[] = [];
  for (const name of Object.keys(cliFile.tensors)) {
    const [x, y] = await Promise.all([cliFile.float32(name), pageFile.float32(name)]);
    for (let i = 0; i < x.length; i++) {
      const relative = Math.abs(x[i] - y[i]) / Math.max(Math.abs(x[i]), 1e-2);
      worst = Math.max(worst, relative);
      if (relative > 2e-2) problems.push(`${name}[${i}]: page ${y[i]} vs CLI ${x[i]}`);
    }
  }
  console.log(`ADL vectors, page vs CLI: largest relative difference ${worst.toExponential(2)}`);
  assertEquals(problems, []);
  // The lens's tokens: the same at every rank, but where two logits lie within 1e-3 of each other (the
  // two adapters' last bits may order them either way).
  const lensRows = async (d: string) =>
    (parseCsv(await Deno.readTextFile(join(d, "adl_top_tokens.csv")), { columns: true }) as Record<string, string>[])
      .map((row) => ({
        at: `${row.position} ${row.direction} ${row.rank}`,
        tokenId: row.token_id,
        logit: Number(row.lens_logit),
      }));
  const [cliLens, pageLens] = await Promise.all([cliDir, pageDir].map(lensRows));
  assertEquals(pageLens.map((r) => r.at), cliLens.map((r) => r.at));
  const lensProblems = pageLens.filter((row, i) =>
    row.tokenId !== cliLens[i].tokenId && Math.abs(row.logit - cliLens[i].logit) > 1e-3 * Math.abs(cliLens[i].logit)
  );
  assertEquals(lensProblems, []);
  // The generations with the vector.
  const pageResults = JSON.parse(new TextDecoder().decode(files.get(resultsName)!));
  assertEquals(pageResults, JSON.parse(await Deno.readTextFile(join(cliDir, resultsName))));
});

Deno.test("the page's SAE-feature steering equals `deno task steer --vector` of that feature's W_dec row, read from the SAE's file", async () => {
  const dir = await tempDir("web-steer-sae");
  const chat = await ensureFixtureModel("tiny-gemma2-chat");
  const sae = await ensureFixtureSae("tiny-gemma2-sae-saelens");
  const feature = 7;
  // The direction, read independently of the toolkit's SAE loaders: SAELens stores W_dec as [d_sae, d_in].
  const wDec = await (await openSafetensors(join(sae, "sae_weights.safetensors"))).float32("W_dec");
  const cfg = JSON.parse(await Deno.readTextFile(join(sae, "cfg.json")));
  const dIn = cfg.d_in;
  assertEquals(wDec.length, cfg.d_sae * dIn);
  const vectorFile = join(dir, "feature.json");
  await Deno.writeTextFile(vectorFile, JSON.stringify(Array.from(wDec.subarray(feature * dIn, (feature + 1) * dIn))));
  const promptFile = join(dir, "prompts.txt");
  await Deno.writeTextFile(promptFile, ADL_PROMPTS.join("\n") + "\n");
  // The SAE's own layer (its cfg.json's hook_name), named on both sides.
  const layer = /^blocks\.(\d+)\./.exec(cfg.metadata.hook_name)![1];
  const cliDir = join(dir, "cli");
  const cli = await runScript("steer.ts", [
    "--device",
    "webgpu",
    "--model",
    chat,
    "--vector",
    vectorFile,
    "--layer",
    layer,
    "--greedy",
    "--mag",
    "3",
    "--max-new-tokens",
    String(ADL_NEW_TOKENS),
    "--prompts",
    promptFile,
    "--out-dir",
    cliDir,
  ]);
  assertEquals(cli.code, 0, cli.stderr);
  const resultsName = [...Deno.readDirSync(cliDir)].map((e) => e.name).find((n) => n.endsWith("_steer.json"))!;

  const files = await steerAtPlusThree(async (page) => {
    await pickFolder(page, "#chat-folder", chat);
    await pickFolder(page, "#sae-folder", sae);
    await page.locator("#steer-source").selectOption("sae-feature");
    await page.locator("#steer-feature").fill(String(feature));
    await page.locator("#steer-layer").fill(layer);
  });
  assert(files.has(resultsName), `the page offers ${resultsName} (${[...files.keys()]})`);
  assertEquals(
    JSON.parse(new TextDecoder().decode(files.get(resultsName)!)),
    JSON.parse(await Deno.readTextFile(join(cliDir, resultsName))),
  );
});
