import { assert, assertClose, assertEquals, assertMatch } from "../assert.ts";
import { tempDir } from "../temp.ts";
import { fixtureDiffOptions } from "../helpers.ts";
import { join } from "node:path";
import { TOKEN_TYPES } from "../../lib/runtime/chat.ts";
import { readStats, writeStats } from "../../lib/run/stats_files.ts";
import type { DiffRow } from "../../lib/features/diff.ts";
import { UserError } from "../../lib/core/errors.ts";
import type { DashboardData } from "../../lib/report/dashboards.ts";
import { chooseCards, featureSubset } from "../../lib/run/dashboards.ts";
import { SeededRandom } from "../../lib/core/random.ts";
import { createEncoder } from "../../lib/encoders/encoder.ts";
import { randomSae } from "../random_sae.ts";
import { collectDiff, writeDiffReport } from "../../lib/run/diff_run.ts";
import { statsPath } from "../../lib/run/stats_files.ts";

Deno.test("chooseCards: the first n rows per read position of each table, one card per feature and read position with all its ranks", () => {
  const row = (featureId: number, token: string, rank: number) => ({ featureId, token, rank }) as DiffRow;
  const tables = {
    all_mean: [row(5, "asst", 1), row(7, "newline", 1), row(9, "asst", 2), row(3, "asst", 3)],
    active_mean: [row(9, "asst", 1), row(5, "newline", 1), row(4, "asst", 2)],
    sparsity: [row(5, "asst", 2), row(8, "asst", 3)],
  };
  assertEquals(chooseCards(tables, 2), [
    { feature: 5, token: "asst", ranks: [{ metric: "all_mean", rank: 1 }, { metric: "sparsity", rank: 2 }] },
    { feature: 7, token: "newline", ranks: [{ metric: "all_mean", rank: 1 }] },
    { feature: 9, token: "asst", ranks: [{ metric: "all_mean", rank: 2 }, { metric: "active_mean", rank: 1 }] },
    { feature: 5, token: "newline", ranks: [{ metric: "active_mean", rank: 1 }] },
    { feature: 4, token: "asst", ranks: [{ metric: "active_mean", rank: 2 }] },
  ]);
  assertEquals(chooseCards(tables, 0), []);
});

Deno.test("the report's dashboards: every card's examples are the run's lists, explanations come from Neuronpedia (or say why not); other prompts are refused in one line", async () => {
  const dir = await tempDir("diff-dashboards-");
  const cacheDir = join(dir, "neuronpedia-cache");
  const requests: string[] = [];
  const controller = new AbortController();
  // A stand-in for Neuronpedia's feature API: even features explained, odd ones unknown (404).
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", signal: controller.signal, onListen: () => {} }, (r) => {
    const path = new URL(r.url).pathname;
    requests.push(path);
    const feature = Number(path.split("/").at(-1));
    return feature % 2
      ? Response.json({ error: "not available" }, { status: 404 })
      : Response.json({ index: String(feature), explanations: [{ description: `feature ${feature} explained` }] });
  });
  try {
    const out = join(dir, "run");
    await collectDiff({ ...await fixtureDiffOptions(out), neuronpediaId: "tiny-llama/2-test" });
    const lines: string[] = [];
    const report = (explanations: { baseUrl: string; cacheDir: string }) =>
      writeDiffReport(out, {
        topK: 5,
        decreases: false,
        cards: 3,
        device: "cpu",
        explanations,
        log: (l) => lines.push(l),
      });
    const written = await report({ baseUrl: `http://127.0.0.1:${server.addr.port}`, cacheDir });
    assert(written.files.includes("features.html"), written.files.join());
    const data = await dashboardData(out);
    const features = [...new Set(data.cards.map((c) => c.feature))];
    assertEquals(requests.length, features.length, "one request per feature on a card");
    const files = { base: await readStats(statsPath(out, "base")), chat: await readStats(statsPath(out, "chat")) };
    for (const card of data.cards) {
      const t = TOKEN_TYPES.indexOf(card.token as typeof TOKEN_TYPES[number]);
      assert(card.ranks.every((r) => r.rank <= 3), `${card.feature}: ranks ${JSON.stringify(card.ranks)}`);
      assertEquals(card.link, `https://www.neuronpedia.org/tiny-llama/2-test/${card.feature}`);
      assertEquals(
        card.explanation,
        card.feature % 2
          ? { texts: [], note: "Neuronpedia has no explanation of this feature" }
          : { texts: [`feature ${card.feature} explained`] },
      );
      for (const model of ["base", "chat"] as const) {
        const shown = card.examples[model].map((e) => ({ value: e.value, prompt: e.prompt }));
        assertEquals(shown, files[model].examples!.list(t, card.feature), `${model} ${card.feature} ${card.token}`);
        for (const e of card.examples[model]) assertEquals(e.activations?.length, data.tokens[e.prompt].length);
      }
    }
    assertEquals(lines, []);

    // Offline (the server gone, nothing cached): one line, and the cards say so.
    controller.abort();
    await server.finished;
    await report({ baseUrl: `http://127.0.0.1:${server.addr.port}`, cacheDir: join(dir, "empty-cache") });
    assertEquals(lines.length, 1, lines.join("\n"));
    assertMatch(lines[0], /^Neuronpedia explanations unavailable \(.* cannot be reached/);
    const offline = await dashboardData(out);
    assert(offline.cards.every((c) => c.explanation.note === "no explanation cached"));
    // Offline with the first server's answers cached: they are shown.
    await report({ baseUrl: `http://127.0.0.1:${server.addr.port}`, cacheDir });
    assertEquals((await dashboardData(out)).cards.map((c) => c.explanation), data.cards.map((c) => c.explanation));

    // A model or SAE that changed since the collection: refused in one line.
    const chat = await readStats(statsPath(out, "chat"));
    for (
      const [key, pattern] of [["sae_identity", /the SAE .* is not the one/], [
        "model_identity",
        /the chat model .* is not the one/,
      ]] as const
    ) {
      await writeStats(statsPath(out, "chat"), chat.stats, { ...chat.metadata, [key]: "another" }, chat.examples);
      const refused = await report({ baseUrl: "http://127.0.0.1:9", cacheDir }).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert(refused instanceof UserError && pattern.test(refused.message), String(refused));
    }
    await writeStats(statsPath(out, "chat"), chat.stats, chat.metadata, chat.examples);

    // Prompts that are not the run's: refused in one line, the figure still written, without the link.
    const saved = JSON.parse(await Deno.readTextFile(join(out, "prompts.json")));
    saved[0] = "another prompt";
    await Deno.writeTextFile(join(out, "prompts.json"), JSON.stringify(saved));
    const damage = () => Deno.writeTextFile(join(out, "prompts.json"), '["trunc');
    for (const tamper of [() => {}, damage, () => Deno.remove(join(out, "prompts.json"))]) {
      await tamper();
      const refused = await report({ baseUrl: "http://127.0.0.1:9", cacheDir }).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert(refused instanceof UserError && !refused.message.includes("\n"), String(refused));
      assertMatch(
        refused.message,
        /prompts\.json (holds other prompts than|is missing; it holds the prompts of|is not valid JSON \(damaged\?\); it holds the prompts of) the statistics/,
      );
      assert(!(await Deno.readTextFile(join(out, "feature_increases.html"))).includes('href="features.html"'));
    }
  } finally {
    controller.abort();
    await server.finished;
    await Deno.remove(dir, { recursive: true });
  }
});

/** The data `features.html` embeds. */
async function dashboardData(dir: string): Promise<DashboardData> {
  const html = await Deno.readTextFile(join(dir, "features.html"));
  return JSON.parse(/^const data = (.*);$/m.exec(html)![1]);
}

Deno.test("featureSubset: the shown features of a ReLU (b_dec applied), JumpReLU and gated SAE encode as in the whole SAE", async () => {
  const features = [41, 3, 17];
  const x = new SeededRandom(9).normals(5 * 24);
  for (const [architecture, applyBDec] of [["relu", true], ["jumprelu", false], ["gated", false]] as const) {
    const whole = randomSae(24, 60, architecture, 4, applyBDec);
    if (architecture === "gated") {
      const r = new SeededRandom(6);
      whole.magnitude = { scale: Float32Array.from(r.normals(60), (v) => Math.exp(0.3 * v)), bias: r.normals(60, 0.5) };
    }
    const { sae, column } = featureSubset(whole, features);
    assertEquals(sae.config.dSae, 3);
    const [a, b] = [await createEncoder(whole, "cpu"), await createEncoder(sae, "cpu")];
    const [full, part] = [await a.encode(x, 5), await b.encode(x, 5)];
    a.destroy();
    b.destroy();
    const expected = Array.from({ length: 5 }, (_, r) => features.map((f) => full[r * 60 + f])).flat();
    const got = Array.from({ length: 5 }, (_, r) => features.map((f) => part[r * 3 + column.get(f)!])).flat();
    assert(expected.some((v) => v > 0), `${architecture}: some shown feature fires`);
    assertClose(got, expected, { rtol: 1e-5, atol: 1e-6, label: architecture });
  }
});
