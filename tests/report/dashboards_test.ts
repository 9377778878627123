import { assert, assertEquals } from "../assert.ts";
import { join } from "node:path";
import { type DashboardData, writeDashboardPage } from "../../lib/report/dashboards.ts";
import { dirOutput } from "../../lib/io/dir_output.ts";
import { visitPage } from "../browser.ts";
import { tempDir } from "../temp.ts";

const SCREENSHOTS = new URL("../../results/screenshots/", import.meta.url).pathname;

/** What the drawn page holds, counted in the browser. */
const PROBE = `(() => {
  const cards = [...document.querySelectorAll("section.card")];
  const first = cards[0];
  const before = first.querySelectorAll(".tok").length;
  first.querySelector("button").click();
  return {
    cards: cards.length,
    ids: cards.map((c) => c.id),
    nav: document.querySelectorAll("#nav a").length,
    read: document.querySelectorAll(".tok.read").length,
    coloured: document.querySelectorAll(".tok[style*='background']").length,
    explanations: cards.map((c) => c.querySelector(".explanation").textContent),
    statsRows: first.querySelectorAll(".stats tr").length,
    before,
    after: first.querySelectorAll(".tok").length,
    injected: document.querySelectorAll("img").length,
    links: cards.map((c) => c.querySelector("a.np")?.href ?? ""),
  };
})()`;

Deno.test("features.html draws every card from its embedded data in Chromium without errors; prompt text stays text", async () => {
  // 40 tokens, read at 34: the window shows the 24 before it and the 5 after it (to the end), 30 in all;
  // the whole prompt shows all 40.
  const tokens = (p: number) =>
    Array.from({ length: 40 }, (_, i) => (i === 3 ? `</script><img src=x onerror=alert(${p})>` : `t${p}.${i} `));
  const example = (prompt: number, value: number, withActivations: boolean) => ({
    prompt,
    value,
    position: 34,
    activations: withActivations
      ? Array.from({ length: 40 }, (_, i) => (i === 34 ? value : i % 5 ? 0 : value / 4))
      : undefined,
  });
  const data: DashboardData = {
    title: "Base → Chat (layer 2)",
    k: 3,
    tokens: { 0: tokens(0), 5: tokens(5), 9: tokens(9) },
    note: "Neuronpedia explanations unavailable (offline)",
    cards: [
      {
        feature: 17,
        token: "asst",
        ranks: [{ metric: "all_mean", rank: 1 }, { metric: "sparsity", rank: 4 }],
        link: "https://www.neuronpedia.org/gemma-2-2b/20-gemmascope-res-16k/17",
        explanation: { texts: ["the assistant role"] },
        stats: [{ metric: "all_mean", base: 0.01, chat: 2.5 }, { metric: "sparsity", base: 0.1, chat: 1 }],
        examples: {
          base: [example(9, 1.5, true)],
          chat: [example(0, 3, true), example(5, 2, true), example(9, 1, true)],
        },
      },
      {
        feature: 3,
        token: "newline",
        ranks: [{ metric: "active_mean", rank: 2 }],
        link: "",
        explanation: { texts: [], note: "no Neuronpedia id for this SAE" },
        stats: [{ metric: "all_mean", base: 0, chat: 0.2 }],
        examples: { base: [], chat: [example(5, 0.2, false)] },
      },
    ],
  };
  const dir = await tempDir();
  const path = join(dir, "features.html");
  await writeDashboardPage(dirOutput(dir), "features.html", data);
  const visit = await visitPage<{
    cards: number;
    ids: string[];
    nav: number;
    read: number;
    coloured: number;
    explanations: string[];
    statsRows: number;
    before: number;
    after: number;
    injected: number;
    links: string[];
  }>(path, PROBE, join(SCREENSHOTS, "features_unit.png"));
  assertEquals(visit.errors, []);
  const r = visit.result;
  assertEquals([r.cards, r.nav, r.ids], [2, 2, ["feature-17-asst", "feature-3-newline"]]);
  assertEquals(r.read, 5, "one outlined read position per example");
  // Card 17: 4 examples x (the read token + every 5th token of the window), card 3: its read token only.
  assert(r.coloured > 4 * 2 + 1, `coloured tokens: ${r.coloured}`);
  assertEquals(r.explanations, ["the assistant role", "no Neuronpedia id for this SAE"]);
  assertEquals(r.statsRows, 3);
  assertEquals([r.before, r.after], [4 * 30, 4 * 30 - 30 + 40], "the first example opens whole");
  assertEquals(r.injected, 0, "prompt text is never parsed as HTML");
  assertEquals(r.links, [data.cards[0].link, ""]);
});
