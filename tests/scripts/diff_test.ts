import { assert, assertBytesEqual, assertClose, assertEquals, assertMatch } from "../assert.ts";
import { join } from "node:path";
import { parse } from "csv-parse/sync";
import { preparePrompts, TOKEN_TYPES, type TurnHeader } from "../../lib/runtime/chat.ts";
import { readStats } from "../../lib/run/stats_files.ts";
import { ensureFixtureModel, ensureFixtureSae, fixtureReferenceSae } from "../../lib/fixtures/build.ts";
import { DEMO_PROMPTS } from "../../lib/fixtures/prompts.ts";
import { resolveModelDir } from "../../lib/models/hub.ts";
import { visitPage } from "../browser.ts";
import { fixtureHandle, fixtureReference, meaningfulLines, runScript } from "../helpers.ts";
import { referenceEncode } from "../../lib/fixtures/sae_reference.ts";
import { tempDir } from "../temp.ts";
import {
  assertSameMetrics,
  assertSameTopExamples,
  assertTopExamplesClose,
  notebookHeader,
  referenceActivations,
  referenceResiduals,
  referenceStats,
  referenceTopExamples,
} from "../reference_stats.ts";
import { readPositions } from "../../lib/runtime/chat.ts";
import { referencePreActivations } from "../../lib/fixtures/sae_reference.ts";
import { samplePrompts } from "../../lib/io/prompts.ts";
import type { DashboardData } from "../../lib/report/dashboards.ts";
import type { ReferenceSae } from "../../lib/fixtures/sae_reference.ts";

const SAE = "tiny-llama-sae-llamascope";
const LAYER = 2;
/** f32 activations (ours) against f64 ones (the reference), per element. */
const ACTIVATION_TOLERANCE = { rtol: 1e-4, atol: 1e-5 };

/**
 * Checks the top examples of the stats files in `out` (k = 10, prompts indexed as `ids`) against a
 * plain sort of the reference activations; returns how many prompts were compared exactly.
 */
async function checkTopExamples(
  out: string,
  reference: Record<string, Map<string, Float64Array[]>>,
  prompts: number,
): Promise<number> {
  let compared = 0;
  for (const model of ["base", "chat"]) {
    const { examples, metadata } = await readStats(join(out, `stats_${model}.safetensors`));
    assert(examples, `${model}: top examples kept`);
    const types = metadata.token_types as string[];
    assertEquals([examples.k, metadata.top_examples], [10, 10]);
    types.forEach((type, t) => {
      const top = referenceTopExamples(reference[model].get(type)!, Array.from({ length: prompts }, (_, i) => i));
      for (let j = 0; j < examples.dSae; j++) {
        compared += assertTopExamplesClose(examples.list(t, j), top[j], 10, {
          ...ACTIVATION_TOLERANCE,
          label: `${model} ${type} feature ${j}`,
        });
      }
    });
  }
  return compared;
}

/** The data `features.html` embeds. */
async function dashboardData(out: string): Promise<DashboardData> {
  const html = await Deno.readTextFile(join(out, "features.html"));
  return JSON.parse(/^const data = (.*);$/m.exec(html)![1]);
}

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
 * reference encoding (fixture SAE `saeName`) of the f64 reference residuals; returns those statistics
 * and what they were computed from (for the checks of top examples and dashboards).
 */
async function assertReferenceStats(out: string, saeName: string) {
  const chatHandle = await fixtureHandle("tiny-llama-chat", "cpu");
  const sae = await fixtureReferenceSae(saeName);
  const ids = preparePrompts(chatHandle, DEMO_PROMPTS, {}).map((p) => p.ids);
  const header = notebookHeader(chatHandle, "llama");
  const reference: Record<string, Record<string, ReturnType<typeof referenceStats>>> = {};
  const residuals: Record<string, Float64Array[][]> = {};
  const readActivations: Record<string, Map<string, Float64Array[]>> = {};
  for (const model of ["base", "chat"]) {
    const { config, weights } = fixtureReference(`tiny-llama-${model}`);
    residuals[model] = referenceResiduals(config, weights, ids, LAYER);
    const activations = referenceActivations(residuals[model], ids, sae, header, TOKEN_TYPES);
    readActivations[model] = activations;
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
  return { reference, residuals, readActivations, ids, header, sae };
}

Deno.test("diff: statistics, tables, ranks, ratios, top examples and dashboards equal an independent f64 computation; the pages render", async () => {
  const out = await tempDir("diff-");
  await diff(out, ["--device", "webgpu"]);
  const { reference, residuals, readActivations, ids, header, sae } = await assertReferenceStats(out, SAE);
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
  const visit = await visitPage<{ subplots: number; points: number; dashboards: boolean }>(
    join(out, "feature_increases.html"),
    `(() => { const gd = document.getElementById("figure"); return { subplots: gd._fullLayout._subplots.cartesian.length, points: gd.data.filter((t) => t.mode === "markers").reduce((n, t) => n + t.x.length, 0), dashboards: document.querySelector('a[href="features.html"]') !== null }; })()`,
    new URL("../../results/screenshots/feature_increases.png", import.meta.url).pathname,
  );
  assertEquals(visit.errors, []);
  assertEquals(visit.result, { subplots: 3, points: 3 * 3 * 10, dashboards: true });

  // Top examples collected on the device (residuals gathered on the GPU) against the f64 reference.
  const compared = await checkTopExamples(out, readActivations, ids.length);
  assert(compared > 1000, `prompts compared exactly: ${compared}`);
  console.log(`top examples (webgpu, on device): ${compared} prompts compared exactly`);
  await checkDashboards(out, { reference, residuals, ids, header, sae });
});

/**
 * The dashboards of `out` (cards for the first 10 rows per token type of each table): one card per
 * (feature, token type) of the reference tables' top 10, each example's read position as the
 * reference finds it, and the feature's activation at every token of the prompt as the f64
 * reference encodes the reference residuals there. The page opens in Chromium without errors.
 */
async function checkDashboards(
  out: string,
  ref: {
    reference: Record<string, Record<string, ReturnType<typeof referenceStats>>>;
    residuals: Record<string, Float64Array[][]>;
    ids: number[][];
    header: TurnHeader;
    sae: ReferenceSae;
  },
) {
  const data = await dashboardData(out);
  const expected = new Set<string>();
  for (const metric of ["all_mean", "active_mean", "sparsity"] as const) {
    for (const type of TOKEN_TYPES) {
      const b = ref.reference.base[type][metric];
      const c = ref.reference.chat[type][metric];
      Array.from(b.keys()).sort((i, j) => (c[j] - b[j]) - (c[i] - b[i]) || i - j).slice(0, 10)
        .forEach((f) => expected.add(`${f}:${type}`));
    }
  }
  assertEquals(new Set(data.cards.map((c) => `${c.feature}:${c.token}`)), expected, "one card per top feature");
  const encoded = new Map<string, { f: Float64Array; pre: Float64Array }>();
  const encode = (model: string, prompt: number, token: number) => {
    const key = `${model}:${prompt}:${token}`;
    if (!encoded.has(key)) {
      const x = ref.residuals[model][prompt][token];
      encoded.set(key, { f: referenceEncode(ref.sae, x), pre: referencePreActivations(ref.sae, x) });
    }
    return encoded.get(key)!;
  };
  let [tokens, skipped] = [0, 0];
  for (const card of data.cards) {
    const t = TOKEN_TYPES.indexOf(card.token as typeof TOKEN_TYPES[number]);
    assertEquals(card.explanation.note, "no Neuronpedia id for this SAE");
    for (const model of ["base", "chat"] as const) {
      assert(card.examples[model].length <= 10);
      for (const example of card.examples[model]) {
        const ids = ref.ids[example.prompt];
        assertEquals(data.tokens[example.prompt].length, ids.length, `prompt ${example.prompt} tokens`);
        assertEquals(example.position, readPositions(ids, ref.header, TOKEN_TYPES).positions[t]);
        const activations = example.activations!;
        assertEquals(activations.length, ids.length);
        const label = `${model} feature ${card.feature} prompt ${example.prompt}`;
        assertClose([activations[example.position]], [example.value], { ...ACTIVATION_TOLERANCE, label });
        for (let i = 0; i < ids.length; i++) {
          const { f, pre } = encode(model, example.prompt, i);
          // A pre-activation within f32 rounding of the JumpReLU threshold may fall either side of it.
          const margin = Math.abs(pre[card.feature] - ref.sae.threshold[card.feature]);
          if (margin <= ACTIVATION_TOLERANCE.atol + ACTIVATION_TOLERANCE.rtol * Math.abs(pre[card.feature])) {
            skipped++;
            continue;
          }
          tokens++;
          assertClose([activations[i]], [f[card.feature]], { ...ACTIVATION_TOLERANCE, label: `${label} token ${i}` });
        }
      }
    }
  }
  assert(tokens > 10000 && skipped < tokens / 1000, `tokens compared ${tokens}, on a threshold ${skipped}`);
  console.log(
    `dashboards: ${data.cards.length} cards, ${tokens} per-token activations compared, ${skipped} on a threshold`,
  );
  const visit = await visitPage<{ cards: number; read: number }>(
    join(out, "features.html"),
    `({ cards: document.querySelectorAll("section.card").length, read: document.querySelectorAll(".tok.read").length })`,
    new URL("../../results/screenshots/features.png", import.meta.url).pathname,
  );
  assertEquals(visit.errors, []);
  const examples = data.cards.reduce((n, c) => n + c.examples.base.length + c.examples.chat.length, 0);
  assertEquals(visit.result, { cards: data.cards.length, read: examples });
}

Deno.test("diff: a killed collection resumed with --resume writes identical stats and top examples; two shards merge into one run", async () => {
  const whole = await tempDir("diff-whole-");
  // One device for all runs (webgpu and cpu residuals differ in the last bits): the CPU, the quicker here.
  // The GPU path's checkpoints and resume are held to the host path in tests/collect_test.ts. The
  // dashboards are checked elsewhere (they cost a second pass over the prompts); here only after the merge.
  // Batches of one prompt: on the CPU a batch of four takes a few milliseconds, too short a window
  // to kill the run between two checkpoints; 32 checkpoints per model leave one wide enough.
  await diff(whole, ["--batch-size", "1", "--cards", "0"]);
  const expected = await Promise.all(["base", "chat"].map((m) => Deno.readFile(join(whole, `stats_${m}.safetensors`))));

  const resumed = await tempDir("diff-resume-");
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("../../scripts/diff.ts", import.meta.url).pathname,
      ...await args(resumed, ["--batch-size", "1", "--checkpoint-every", "1"]),
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  const checkpoints = ["base", "chat"].map((m) => join(resumed, `checkpoint_${m}.safetensors`));
  const checkpointed = async () =>
    (await Promise.all(checkpoints.map((c) => Deno.stat(c).then(() => true, () => false)))).some(Boolean);
  for (let i = 0; i < 6000 && !(await checkpointed()); i++) await new Promise((r) => setTimeout(r, 5));
  try {
    child.kill("SIGKILL");
  } catch {
    // It ended before the kill: the assertions below say so.
  }
  await child.status;
  assert(await checkpointed(), "killed after a checkpoint");
  assert(
    !(await Deno.stat(join(resumed, "stats_chat.safetensors")).then(() => true, () => false)),
    "killed before the end",
  );
  await diff(resumed, ["--batch-size", "1", "--checkpoint-every", "1", "--resume", "--cards", "0"]);
  for (const [i, m] of ["base", "chat"].entries()) {
    assertBytesEqual(await Deno.readFile(join(resumed, `stats_${m}.safetensors`)), expected[i], `${m} stats identical`);
  }

  const sharded = await tempDir("diff-shards-");
  await diff(sharded, ["--batch-size", "1", "--shard", "0/2"]);
  await diff(sharded, ["--batch-size", "1", "--shard", "1/2"]);
  // The merge writes the dashboards from the shards' files and prompts.json alone.
  await diff(sharded, ["--merge"]);
  for (const m of ["base", "chat"]) {
    const a = await readStats(join(sharded, `stats_${m}.safetensors`));
    const b = await readStats(join(whole, `stats_${m}.safetensors`));
    assertSameMetrics(a.stats.finalize(), b.stats.finalize(), `${m}: merged shards vs the whole run`);
    // Shards of whole batches run the same batches as the one run: the same f32 values, bit for bit.
    assertSameTopExamples(a.examples!, b.examples!, `${m}: merged shards' top examples vs the whole run`);
  }
  assert((await dashboardData(sharded)).cards.length > 0, "dashboards after --merge");
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
    [["--top-examples", "-2"], /--top-examples must be a non-negative integer, got "-2"/],
    [["--cards", "many"], /--cards must be a non-negative integer, got "many"/],
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

Deno.test("diff: --token-types asst shards merge (CPU top examples equal the f64 reference's); shards of two different runs are refused in one line", async () => {
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
    // The CPU path's top examples, merged from the shards, against the f64 reference of the same prompts.
    const handle = await fixtureHandle("tiny-llama-chat", "cpu");
    const ids = preparePrompts(handle, samplePrompts([...DEMO_PROMPTS], 8, 42), {}).map((p) => p.ids);
    const sae = await fixtureReferenceSae(SAE);
    const reference: Record<string, Map<string, Float64Array[]>> = {};
    for (const model of ["base", "chat"]) {
      const { config, weights } = fixtureReference(`tiny-llama-${model}`);
      const residuals = referenceResiduals(config, weights, ids, LAYER);
      reference[model] = referenceActivations(residuals, ids, sae, notebookHeader(handle, "llama"), ["asst"]);
    }
    const compared = await checkTopExamples(out, reference, 8);
    assert(compared > 100, `prompts compared exactly: ${compared}`);
    console.log(`top examples (cpu, merged shards): ${compared} prompts compared exactly`);

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
  const result = await runScript("diff.ts", await args(out, ["--cards", "0"], gated));
  assertEquals(result.code, 0, result.stderr);
  const { reference } = await assertReferenceStats(out, gated);
  // Features rise and fall between the models, so the comparison is not of two empty tables.
  const moved = TOKEN_TYPES.some((t) => reference.chat[t].sparsity.some((v, j) => v !== reference.base[t].sparsity[j]));
  assert(moved, "some feature's sparsity differs between base and chat");
});
