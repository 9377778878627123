import { assert, assertEquals, assertMatch } from "../assert.ts";
import { join } from "node:path";
import { parse } from "csv-parse/sync";
import { ensureFixtureModel, ensureFixtureSae } from "../../lib/fixtures/build.ts";
import { PLANT_TOP_K, plantedFeatures } from "../../lib/fixtures/plant.ts";
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
});
