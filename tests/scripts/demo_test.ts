import { assert, assertEquals, assertMatch } from "../assert.ts";
import { join } from "node:path";
import { parse } from "csv-parse/sync";
import { ensureFixtureModel, ensureFixtureSae } from "../../lib/fixtures/build.ts";
import { assistantPlantShare, PLANT_TOP_K, plantedFeatures } from "../../lib/fixtures/plant.ts";
import { openSafetensors } from "../../lib/io/safetensors_file.ts";
import type { Family } from "../../lib/fixtures/spec.ts";
import { runScript } from "../helpers.ts";

/** Lines our own failures would print; Mesa's XDG_RUNTIME_DIR complaint used to be one of them. */
function errorLines(stderr: string): string[] {
  return stderr.split("\n").filter((line) => line.startsWith("error:"));
}

/** Checks the table's ranks directly: each planted feature within the top K of its token types. */
async function assertPlantRecovered(out: string, family: Family) {
  const rows = parse(await Deno.readTextFile(join(out, "top_all_mean.csv")), { columns: true }) as Record<
    string,
    string
  >[];
  for (const planted of plantedFeatures(family)) {
    for (const tokenType of planted.tokenTypes) {
      const row = rows.find((r) => r.token === tokenType && Number(r.feature_id) === planted.feature);
      assert(
        row && Number(row.rank) <= PLANT_TOP_K,
        `${family} feature ${planted.feature} at ${tokenType}: ${row?.rank}`,
      );
    }
  }
}

Deno.test("diff demo: no arguments, every planted feature recovered, no error: lines on stderr", async () => {
  const out = await Deno.makeTempDir();
  const result = await runScript("diff.ts", ["--out-dir", out]);
  assertEquals(result.code, 0, result.stderr);
  assertEquals(errorLines(result.stderr), []);
  const n = plantedFeatures("llama").reduce((k, p) => k + p.tokenTypes.length, 0);
  assertMatch(result.stdout, new RegExp(`recovered ${n}/${n} planted features`));
  assertMatch(result.stdout, /report: .*feature_increases\.html/);
  await assertPlantRecovered(out, "llama");
});

Deno.test("diff on the Gemma fixtures (Gemma Scope SAE, cpu) ranks every planted feature in the top K", async () => {
  const out = await Deno.makeTempDir();
  const result = await runScript("diff.ts", [
    "--base",
    await ensureFixtureModel("tiny-gemma2-base"),
    "--chat",
    await ensureFixtureModel("tiny-gemma2-chat"),
    "--sae",
    await ensureFixtureSae("tiny-gemma2-sae-gemmascope"),
    "--out-dir",
    out,
    "--device",
    "cpu",
  ]);
  assertEquals(result.code, 0, result.stderr);
  assertEquals(errorLines(result.stderr), []);
  await assertPlantRecovered(out, "gemma2");
});

Deno.test("steer with no vector yet computes the layer's contrast vector, saves it and writes the results JSON", async () => {
  const out = await Deno.makeTempDir();
  const result = await runScript("steer.ts", ["--mag", "-3,3", "--max-new-tokens", "4", "--out-dir", out]);
  assertEquals(result.code, 0, result.stderr);
  assertEquals(errorLines(result.stderr), []);
  assertMatch(result.stdout, /no contrast vector yet: computing it for layer 2/);
  const files = [...Deno.readDirSync(out)].map((e) => e.name);
  assert(files.includes("contrast_vectors.safetensors"), files.join(", "));
  const json = files.find((f) => f.endsWith("_steer.json"));
  assert(json, files.join(", "));
  const results = JSON.parse(await Deno.readTextFile(join(out, json)));
  assertEquals(Object.keys(results).length, 6);
  // The built-in model's vector is read at the "assistant" token: it must find the planted direction.
  const file = await openSafetensors(join(out, "contrast_vectors.safetensors"));
  const share = assistantPlantShare("gemma2", await file.float32("contrast.2"));
  assert(share > 0.7, `contrast vector share along the planted assistant directions: ${share}`);
});

for (const family of ["llama", "gemma2"] as Family[]) {
  Deno.test(`sweep-layers --position asst on the ${family} fixture: contrast vectors point along the plant`, async () => {
    const out = await Deno.makeTempDir();
    const result = await runScript("sweep_layers.ts", [
      "--model",
      await ensureFixtureModel(`tiny-${family}-chat`),
      "--position",
      "asst",
      "--device",
      "cpu",
      "--out-dir",
      out,
    ]);
    assertEquals(result.code, 0, result.stderr);
    assertEquals(errorLines(result.stderr), []);
    const file = await openSafetensors(join(out, "contrast_vectors.safetensors"));
    for (let layer = 0; layer < 4; layer++) {
      const share = assistantPlantShare(family, await file.float32(`contrast.${layer}`));
      // By chance a 2-d span would hold about sqrt(2/d) = 0.2 of a random vector's norm.
      assert(share > 0.6, `${family} layer ${layer}: share along the planted assistant directions ${share}`);
    }
  });
}

Deno.test("generate and capture demos (WebGPU) print no error: lines on success", async () => {
  const out = await Deno.makeTempDir();
  const runs = [
    await runScript("generate.ts", ["--max-new-tokens", "2"]),
    await runScript("capture.ts", ["--layers", "1", "--out", join(out, "acts.safetensors")]),
  ];
  for (const run of runs) {
    assertEquals(run.code, 0, run.stderr);
    assertEquals(errorLines(run.stderr), []);
  }
});
