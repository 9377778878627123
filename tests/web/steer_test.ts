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
import { basename, join } from "node:path";
import { tempDir } from "../temp.ts";
import { ensureFixtureModel } from "../../lib/fixtures/build.ts";
import { ROLE_PROMPTS } from "../../lib/fixtures/role_prompts.ts";
import { openSafetensors } from "../../lib/io/safetensors_file.ts";
import { downloads, openSite, pickFolder, waitForState } from "./harness.ts";

/**
 * Tokens per response on both sides. Few: on SwiftShader each generation step at a sequence length the
 * page has not run yet costs seconds (onnxruntime-web compiles shaders per shape; measured ~5 s a token
 * for each new prompt, a repeated prompt at the next magnitude well under 1 s).
 */
const MAX_NEW_TOKENS = 6;

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
  const cli = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "scripts/steer.ts",
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
    ],
    cwd: new URL("../../", import.meta.url),
  }).output();
  assertEquals(cli.code, 0, new TextDecoder().decode(cli.stderr));
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
  // Per tensor: the largest difference, and the largest element (the scale f32 rounding is relative to).
  const compare = async (name: string) => {
    const [x, y] = await Promise.all(
      [cliDir, pageDir].map(async (d) =>
        (await openSafetensors(join(d, "contrast_vectors.safetensors"))).float32(name)
      ),
    );
    assertEquals(y.length, x.length, name);
    let worst = 0;
    let scale = 0;
    for (let i = 0; i < x.length; i++) {
      worst = Math.max(worst, Math.abs(x[i] - y[i]));
      scale = Math.max(scale, Math.abs(x[i]));
    }
    console.log(
      `${name}, page vs CLI: largest difference ${worst.toExponential(2)}, largest element ${scale.toExponential(2)}`,
    );
    return worst / scale;
  };
  const vectorDifference = await compare(`contrast.${layer}`);
  await compare(`normal_mean.${layer}`);
  await compare(`swapped_mean.${layer}`);
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

  // The vector last, so a failure here still shows whether the generations agreed: within 1e-2 of its
  // largest element (the diff test's tolerance across these two adapters).
  assert(vectorDifference <= 1e-2, `the contrast vectors differ by ${vectorDifference} of their largest element`);

  // The table: a row per prompt, the responses under their magnitudes.
  assertEquals(table[0], ["prompt", "magnitude -3", "magnitude 3"]);
  assertEquals(table.slice(1), PROMPTS.map((p) => [p, cliResults[p]["-3"][0], cliResults[p]["3"][0]]));
});
