import { assert, assertEquals } from "../assert.ts";
import { join } from "node:path";
import { DIFF_METRICS, type DiffRow } from "../../lib/diff.ts";
import { cosineSweepFigure, featureIncreasesFigure } from "../../lib/report/figures.ts";
import { writePlotlyPage } from "../../lib/report/plotly.ts";
import { visitPage } from "../browser.ts";
import { tempDir } from "../temp.ts";

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
  await writePlotlyPage(path, "diff", featureIncreasesFigure(tables, tokens, "Base → Chat"));
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
  await writePlotlyPage(path, "sweep", cosineSweepFigure(rows, "Cosine Similarity", "model"));
  const visit = await visitPage<{ traces: number }>(path, PROBE, join(SCREENSHOTS, "cosine_similarity_unit.png"));
  assertEquals(visit.errors, []);
  assertEquals(visit.result.traces, 3);
});
