import { assert, assertBytesEqual, assertClose, assertEquals, assertMatch } from "../assert.ts";
import { join } from "node:path";
import { parse } from "csv-parse/sync";
import { assistantHeaderIds, preparePrompts, TOKEN_TYPES } from "../../lib/chat.ts";
import { readStats } from "../../lib/collect.ts";
import { ensureFixtureModel, ensureFixtureSae, fixtureReferenceSae } from "../../lib/fixtures/build.ts";
import { DEMO_PROMPTS } from "../../lib/fixtures/prompts.ts";
import { resolveModelDir } from "../../lib/hub.ts";
import { visitPage } from "../browser.ts";
import { fixtureHandle, fixtureReference, meaningfulLines, runScript } from "../helpers.ts";
import { tempDir } from "../temp.ts";
import { assertSameMetrics, referenceActivations, referenceStats } from "../reference_stats.ts";

const SAE = "tiny-llama-sae-llamascope";
const LAYER = 2;

async function args(out: string, extra: string[] = [], sae = SAE): Promise<string[]> {
  return [
    "--base",
    await ensureFixtureModel("tiny-llama-base"),
    "--chat",
    await ensureFixtureModel("tiny-llama-chat"),
    "--sae",
    await ensureFixtureSae(sae),
    "--layer",
    String(LAYER),
    "--out-dir",
    out,
    "--top-k",
    "10",
    "--device",
    "cpu",
    ...extra,
  ];
}

async function diff(out: string, extra: string[] = []) {
  const result = await runScript("diff.ts", await args(out, extra));
  assertEquals(result.code, 0, result.stderr);
  return result;
}

/**
 * Checks a run's `stats_{base,chat}.safetensors` in `out` against textbook statistics of the f64
 * reference encoding (fixture SAE `saeName`) of the f64 reference residuals; returns those statistics.
 */
async function assertReferenceStats(out: string, saeName: string) {
  const chatHandle = await fixtureHandle("tiny-llama-chat", "cpu");
  const sae = await fixtureReferenceSae(saeName);
  const ids = preparePrompts(chatHandle, DEMO_PROMPTS, {}).map((p) => p.ids);
  const header = assistantHeaderIds(chatHandle);
  const reference: Record<string, Record<string, ReturnType<typeof referenceStats>>> = {};
  for (const model of ["base", "chat"]) {
    const { config, weights } = fixtureReference(`tiny-llama-${model}`);
    const activations = referenceActivations(config, weights, sae, ids, header, LAYER, TOKEN_TYPES);
    reference[model] = Object.fromEntries(TOKEN_TYPES.map((t) => [t, referenceStats(activations.get(t)!)]));
    const { stats, metadata } = await readStats(join(out, `stats_${model}.safetensors`));
    assertEquals([metadata.num_prompts, metadata.num_features, metadata.token_types], [DEMO_PROMPTS.length, sae.dSae, [
      ...TOKEN_TYPES,
    ]]);
    const ours = stats.finalize();
    for (const type of TOKEN_TYPES) {
      for (const [name, values] of Object.entries(reference[model][type])) {
        // Per element; observed worst 1.3e-6 absolute.
        assertClose(ours[type][name as keyof typeof ours[string]], values, {
          rtol: 1e-4,
          atol: 1e-5,
          label: `${saeName}: ${model} ${type} ${name}`,
        });
      }
    }
  }
  return reference;
}

Deno.test("diff: statistics, tables, ranks and ratios equal an independent f64 computation; the page renders", async () => {
  const out = await tempDir("diff-");
  await diff(out, ["--device", "webgpu"]);
  const reference = await assertReferenceStats(out, SAE);
  for (const metric of ["all_mean", "active_mean", "sparsity"] as const) {
    const rows: Record<string, string>[] = parse(await Deno.readTextFile(join(out, `top_${metric}.csv`)), {
      columns: true,
    });
    assertEquals(rows.length, 10 * TOKEN_TYPES.length);
    for (const type of TOKEN_TYPES) {
      const b = reference.base[type][metric];
      const c = reference.chat[type][metric];
      const expected = Array.from(b.keys()).sort((i, j) => (c[j] - b[j]) - (c[i] - b[i]) || i - j).slice(0, 10);
      const ours = rows.filter((r) => r.token === type).sort((x, y) => Number(x.rank) - Number(y.rank));
      assertEquals(ours.map((r) => Number(r.feature_id)), expected, `${metric} ${type} ranking`);
      for (const row of ours) {
        const f = Number(row.feature_id);
        assert(Math.abs(Number(row[`${metric}_diff`]) - (c[f] - b[f])) < 1e-4, `${metric} diff of ${f}`);
        // The README's rule, not the product's changeRatio: chat / base; base 0 gives inf (-inf), or 1 if chat is 0 too.
        const written = row[`${metric}_ratio`];
        if (b[f] === 0) {
          assertEquals(written, c[f] === 0 ? "1" : c[f] > 0 ? "inf" : "-inf", `ratio of ${f}`);
        } else {
          const ratio = c[f] / b[f];
          assert(Math.abs(Number(written) - ratio) < 1e-3 * Math.abs(ratio), `ratio ${written} vs ${ratio}`);
        }
      }
    }
  }
  const visit = await visitPage<{ subplots: number; points: number }>(
    join(out, "feature_increases.html"),
    `(() => { const gd = document.getElementById("figure"); return { subplots: gd._fullLayout._subplots.cartesian.length, points: gd.data.filter((t) => t.mode === "markers").reduce((n, t) => n + t.x.length, 0) }; })()`,
    new URL("../../results/screenshots/feature_increases.png", import.meta.url).pathname,
  );
  assertEquals(visit.errors, []);
  assertEquals(visit.result, { subplots: 3, points: 3 * 3 * 10 });
});

Deno.test("diff: a killed collection resumed with --resume writes identical stats; two shards merge into one run", async () => {
  const whole = await tempDir("diff-whole-");
  // One device for all runs (webgpu and cpu residuals differ in the last bits): the CPU, the quicker here.
  // The GPU path's checkpoints and resume are held to the host path in tests/collect_test.ts.
  await diff(whole, ["--batch-size", "4"]);
  const expected = await Promise.all(["base", "chat"].map((m) => Deno.readFile(join(whole, `stats_${m}.safetensors`))));

  const resumed = await tempDir("diff-resume-");
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("../../scripts/diff.ts", import.meta.url).pathname,
      ...await args(resumed, ["--batch-size", "4", "--checkpoint-every", "1"]),
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  const checkpoint = join(resumed, "checkpoint_base.safetensors");
  for (let i = 0; i < 600 && !(await Deno.stat(checkpoint).then(() => true, () => false)); i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill("SIGKILL");
  await child.status;
  assert(await Deno.stat(checkpoint).then(() => true, () => false), "killed after a checkpoint");
  assert(
    !(await Deno.stat(join(resumed, "stats_chat.safetensors")).then(() => true, () => false)),
    "killed before the end",
  );
  await diff(resumed, ["--batch-size", "4", "--checkpoint-every", "1", "--resume"]);
  for (const [i, m] of ["base", "chat"].entries()) {
    assertBytesEqual(await Deno.readFile(join(resumed, `stats_${m}.safetensors`)), expected[i], `${m} stats identical`);
  }

  const sharded = await tempDir("diff-shards-");
  await diff(sharded, ["--batch-size", "4", "--shard", "0/2"]);
  await diff(sharded, ["--batch-size", "4", "--shard", "1/2"]);
  await diff(sharded, ["--merge"]);
  for (const m of ["base", "chat"]) {
    const a = (await readStats(join(sharded, `stats_${m}.safetensors`))).stats.finalize();
    const b = (await readStats(join(whole, `stats_${m}.safetensors`))).stats.finalize();
    assertSameMetrics(a, b, `${m}: merged shards vs the whole run`);
  }
  assertEquals(
    await Deno.readTextFile(join(sharded, "top_all_mean.csv")),
    await Deno.readTextFile(join(whole, "top_all_mean.csv")),
  );
});

Deno.test("diff: bad input gives one line, a non-zero exit, and earlier results stay", async () => {
  const out = await tempDir("diff-bad-");
  await Deno.writeTextFile(join(out, "top_all_mean.csv"), "earlier\n");
  const empty = join(out, "empty.txt");
  await Deno.writeTextFile(empty, "\n");
  const parquet = join(out, "broken.parquet");
  await Deno.writeTextFile(parquet, "PAR1 but not really");
  // The mismatched base's fp32 graph is built beforehand (as a first use would): its build log is not
  // the error line under test.
  await resolveModelDir(await ensureFixtureModel("tiny-gemma2-base"), { dtype: "fp32" });
  const cases: [string[], RegExp][] = [
    [["--chat", "./no/such/model"], /model directory not found/],
    [["--sae", await ensureFixtureSae("tiny-gemma2-sae-gemmascope")], /expects d_model 48 but the model has 64/],
    [["--layer", "4"], /layer 4 is out of range: this model has layers 0\.\.3/],
    [["--prompts", empty], /no prompts in/],
    [["--prompts", parquet], /could not read prompts from/],
    [["--shard", "2/2"], /bad --shard/],
    [["--checkpoint-every", "abc"], /--checkpoint-every must be a non-negative integer, got "abc"/],
    [["--out-dir", empty], /--out-dir .*empty\.txt is a file, not a directory/],
    [
      ["--base", await ensureFixtureModel("tiny-gemma2-base")],
      /the base and chat models differ \(model_type gemma2 vs llama, hidden size 48 vs 64, vocabulary 256000 vs 128256\).*--allow-mismatch/,
    ],
  ];
  for (const [extra, pattern] of cases) {
    const result = await runScript("diff.ts", [...await args(out), ...extra]);
    assert(result.code !== 0, `${extra}`);
    const lines = meaningfulLines(result.stderr);
    assertEquals(lines.length, 1, result.stderr);
    assert(pattern.test(lines[0]), `${extra}: ${lines[0]}`);
  }
  assertEquals(await Deno.readTextFile(join(out, "top_all_mean.csv")), "earlier\n");
});

Deno.test("diff: --token-types asst shards merge; shards of two different runs are refused in one line", async () => {
  const out = await tempDir("diff-asst-shards-");
  try {
    const common = ["--n", "8", "--batch-size", "4", "--token-types", "asst"];
    await diff(out, [...common, "--shard", "0/2"]);
    await diff(out, [...common, "--shard", "1/2"]);
    // The report takes the token types from the shards, whatever the command line says.
    await diff(out, ["--merge"]);
    const rows: Record<string, string>[] = parse(await Deno.readTextFile(join(out, "top_all_mean.csv")), {
      columns: true,
    });
    assertEquals(new Set(rows.map((r) => r.token)), new Set(["asst"]));
    assertEquals((await readStats(join(out, "stats_chat.safetensors"))).metadata.num_prompts, 8);

    // Shard 1 again, from another run (another batch size): the merge must not mix the two.
    await diff(out, [...common.slice(0, 2), "--batch-size", "2", "--token-types", "asst", "--shard", "1/2"]);
    const before = await Deno.readTextFile(join(out, "top_all_mean.csv"));
    const result = await runScript("diff.ts", ["--merge", "--out-dir", out]);
    assert(result.code !== 0, "refused");
    const lines = meaningfulLines(result.stderr);
    assertEquals(lines.length, 1, result.stderr);
    assertMatch(lines[0], /holds shards of 2 different runs/);
    assertEquals(await Deno.readTextFile(join(out, "top_all_mean.csv")), before, "earlier report untouched");
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("diff: a gated SAELens SAE runs end to end on the CPU; its statistics equal the f64 reference's", async () => {
  const gated = "tiny-llama-sae-saelens-gated";
  const out = await tempDir("diff-gated-");
  const result = await runScript("diff.ts", await args(out, [], gated));
  assertEquals(result.code, 0, result.stderr);
  const reference = await assertReferenceStats(out, gated);
  // Features rise and fall between the models, so the comparison is not of two empty tables.
  const moved = TOKEN_TYPES.some((t) => reference.chat[t].sparsity.some((v, j) => v !== reference.base[t].sparsity[j]));
  assert(moved, "some feature's sparsity differs between base and chat");
});
