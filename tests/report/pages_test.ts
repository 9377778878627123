import { assert, assertEquals } from "../assert.ts";
import { join } from "node:path";
import { DIFF_METRICS, type DiffRow } from "../../lib/features/diff.ts";
import { cosineSweepFigure, featureIncreasesFigure } from "../../lib/report/figures.ts";
import { writePlotlyPage } from "../../lib/report/plotly.ts";
import { writeKlOutputs } from "../../lib/report/kl.ts";
import { writeAdlOutputs } from "../../lib/report/adl.ts";
import { writeCrosscoderOutputs } from "../../lib/report/crosscoder.ts";
import { LATENT_TAGS, latentDecoderStats, tagCounts } from "../../lib/analysis/crosscoder/analysis.ts";
import { loadCrosscoder } from "../../lib/analysis/crosscoder/load.ts";
import { ensureFixtureCrosscoder } from "../../lib/fixtures/build.ts";
import { FeatureStats } from "../../lib/features/stats.ts";
import { visitPage } from "../browser.ts";
import { tempDir } from "../temp.ts";
import { dirOutput } from "../../lib/io/dir_output.ts";

const SCREENSHOTS = new URL("../../results/screenshots/", import.meta.url).pathname;

/** Counts, as Plotly sees them: cartesian subplots and marker points. */
const PROBE = `(() => {
  const gd = document.getElementById("figure");
  return {
    subplots: gd._fullLayout._subplots.cartesian.length,
    points: gd.data.filter((t) => t.mode === "markers").reduce((n, t) => n + t.x.length, 0),
    traces: gd.data.length,
    offline: typeof Plotly === "object" && !document.querySelector("script[src]"),
  };
})()`;

Deno.test("feature_increases.html opens in Chromium without errors: three subplots, every point", async () => {
  const tokens = ["asst", "endheader", "newline"];
  const rows = (metric: string): DiffRow[] =>
    tokens.flatMap((token, t) =>
      Array.from({ length: 7 }, (_, i) => ({
        rank: i + 1,
        featureId: 100 * t + i,
        token,
        base: i * 0.1,
        chat: i * 0.1 + (metric === "sparsity" ? 0.05 : 1),
        diff: 1,
        ratio: Infinity,
        link: `https://www.neuronpedia.org/x/y/${100 * t + i}`,
      }))
    );
  const tables = Object.fromEntries(DIFF_METRICS.map((m) => [m, rows(m)])) as Record<
    (typeof DIFF_METRICS)[number],
    DiffRow[]
  >;
  const dir = await tempDir();
  const path = join(dir, "feature_increases.html");
  await writePlotlyPage(
    dirOutput(dir),
    "feature_increases.html",
    "diff",
    featureIncreasesFigure(tables, tokens, "Base → Chat"),
  );
  const visit = await visitPage<{ subplots: number; points: number; offline: boolean }>(
    path,
    PROBE,
    join(SCREENSHOTS, "feature_increases_unit.png"),
  );
  assertEquals(visit.errors, []);
  assertEquals(visit.result.subplots, 3);
  assertEquals(visit.result.points, 3 * 3 * 7);
  assert(visit.result.offline, "plotly.js is inlined");
});

Deno.test("cosine_similarity.html opens in Chromium without errors", async () => {
  const rows = Array.from({ length: 4 }, (_, layer) => ({
    layer,
    avgWithin: 0.9,
    avgCross: 0.8 - layer * 0.05,
    difference: 0.1 + layer * 0.05,
    avgNormalNormal: 0.91,
    avgSwappedSwapped: 0.89,
  }));
  const dir = await tempDir();
  const path = join(dir, "cosine_similarity.html");
  await writePlotlyPage(
    dirOutput(dir),
    "cosine_similarity.html",
    "sweep",
    cosineSweepFigure(rows, "Cosine Similarity", "model"),
  );
  const visit = await visitPage<{ traces: number }>(path, PROBE, join(SCREENSHOTS, "cosine_similarity_unit.png"));
  assertEquals(visit.errors, []);
  assertEquals(visit.result.traces, 3);
});

Deno.test("kl.html and adl.html open in Chromium without errors, tables included", async () => {
  const dir = await tempDir();
  const decode = (ids: number[]) => ids.map((id) => `<t${id}>`).join("");
  const prompts = [0, 1].map((p) => ({
    prompt: `prompt ${p}`,
    text: `text ${p}`,
    ids: Array.from({ length: 9 + p }, (_, i) => 10 * p + i),
    positions: [6, 7, 8],
    headerFound: true,
    truncated: false,
  }));
  const tokens = prompts.flatMap((p, prompt) =>
    p.ids.map((tokenId, position) => ({
      prompt,
      position,
      tokenId,
      types: position >= 6 && position <= 8 ? [["asst", "endheader", "newline"][position - 6]] : ["other"],
      kl: 0.01 * (position + 1) * (prompt + 1),
      chatTop: tokenId + 1,
      baseTop: tokenId + 2,
    }))
  );
  await writeKlOutputs(dirOutput(dir), { tokens, prompts, decode }, {
    title: "KL",
    tokenTypes: ["asst", "endheader", "newline"],
    top: 5,
  });
  const kl = await visitPage<{ traces: number; rows: number }>(
    join(dir, "kl.html"),
    `(() => ({ traces: document.getElementById("figure").data.length, rows: document.querySelectorAll("tr").length }))()`,
    join(SCREENSHOTS, "kl_unit.png"),
  );
  assertEquals(kl.errors, []);
  assert(kl.result.traces >= 3 && kl.result.rows > 5, JSON.stringify(kl.result));

  const keys = ["asst", "endheader"];
  const token = (rank: number, tokenId: number) => ({ rank, tokenId, logit: 3 - rank });
  await writeAdlOutputs(dirOutput(dir), {
    differences: {
      layer: 1,
      keys,
      mean: keys.map(() => Float64Array.from({ length: 8 }, (_, i) => i - 4)),
      counts: [2, 2],
      fallbacks: 0,
    },
    top: keys.map(() => ({ promoted: [token(1, 5), token(2, 6)], suppressed: [token(1, 7), token(2, 8)] })),
    contrast: { layers: [0, 1, 2], vectors: [], readPosition: "last" },
    cosines: Float32Array.from([0.1, 0.5, -0.2, 0.3, 0.9, 0.0]),
    decode,
    info: { base: "base", chat: "chat", prompts: 2 },
  });
  const adl = await visitPage<{ traces: number; rows: number }>(
    join(dir, "adl.html"),
    `(() => ({ traces: document.getElementById("figure").data.length, rows: document.querySelectorAll("tr").length }))()`,
    join(SCREENSHOTS, "adl_unit.png"),
  );
  assertEquals(adl.errors, []);
  assertEquals(adl.result.traces, 2);
  assert(adl.result.rows >= 2 * 3, JSON.stringify(adl.result));
});

Deno.test("crosscoder.html opens in Chromium without errors: one stacked trace per tag holding every latent, the tag table", async () => {
  const crosscoder = await loadCrosscoder(await ensureFixtureCrosscoder("tiny-llama-crosscoder-L2-k4"));
  const decoder = latentDecoderStats(crosscoder);
  const tokenTypes = ["asst", "endheader", "newline"] as const;
  const dir = await tempDir();
  await writeCrosscoderOutputs(dirOutput(dir), {
    crosscoder,
    layer: 2,
    tokenTypes: [...tokenTypes],
    decoder,
    activations: FeatureStats.empty(tokenTypes, crosscoder.config.dict).finalize(),
    prompts: 4,
    fallbacks: 0,
  }, { title: "base → chat" });
  const visit = await visitPage<{ traces: string[]; latents: number; rows: number }>(
    join(dir, "crosscoder.html"),
    `(() => {
      const gd = document.getElementById("figure");
      return {
        traces: gd.data.map((t) => t.name),
        latents: gd.data.reduce((n, t) => n + t.y.reduce((a, b) => a + b, 0), 0),
        rows: document.querySelectorAll("tr").length,
      };
    })()`,
    join(SCREENSHOTS, "crosscoder_unit.png"),
  );
  assertEquals(visit.errors, []);
  assertEquals(visit.result.traces, [...LATENT_TAGS]);
  const live = Array.from(decoder.relativeNorm).filter((r) => !Number.isNaN(r)).length;
  assertEquals(visit.result.latents, live);
  // The header row and one per tag; the fixture has latents of more than one tag, so the stack is a real one.
  assertEquals(visit.result.rows, 1 + LATENT_TAGS.length);
  assert(Object.values(tagCounts(decoder.tags)).filter((n) => n > 0).length > 1, "more than one tag");
});
