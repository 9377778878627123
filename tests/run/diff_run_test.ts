import { assert, assertEquals, assertMatch } from "../assert.ts";
import { tempDir } from "../temp.ts";
import { join } from "node:path";
import { TOKEN_TYPES } from "../../lib/chat.ts";
import { collectStats, readStats, writeStats } from "../../lib/collect.ts";
import { UserError } from "../../lib/errors.ts";
import type { SaeEncoder } from "../../lib/kernels/sae_encode.ts";
import { ensureFixtureModel, ensureFixtureSae } from "../../lib/fixtures/build.ts";
import { DEMO_PROMPTS } from "../../lib/fixtures/prompts.ts";
import {
  collectDiff,
  type DiffRunOptions,
  mergeDiffShards,
  statsPath,
  writeDiffReport,
} from "../../lib/run/diff_run.ts";
import type { DashboardData } from "../../lib/report/dashboards.ts";
import { FeatureStats, METRICS } from "../../lib/stats.ts";
import { assertSameTopExamples } from "../reference_stats.ts";

const PROMPTS = DEMO_PROMPTS.slice(0, 11);

async function options(outDir: string): Promise<DiffRunOptions> {
  return {
    base: await ensureFixtureModel("tiny-llama-base"),
    chat: await ensureFixtureModel("tiny-llama-chat"),
    sae: await ensureFixtureSae("tiny-llama-sae-llamascope"),
    layer: 2,
    prompts: PROMPTS,
    tokenTypes: [...TOKEN_TYPES],
    batchSize: 4,
    maxLength: 512,
    checkpointEvery: 0,
    resume: false,
    device: "cpu",
    outDir,
  };
}

Deno.test("shards of 5 and 6 prompts (batch size 4, so both end on a partial batch) merge to one run's statistics within 1e-6 relative", async () => {
  const dir = await tempDir("diff-run-");
  try {
    const whole = join(dir, "whole");
    const sharded = join(dir, "sharded");
    await collectDiff(await options(whole));
    await collectDiff({ ...await options(sharded), shard: { index: 0, count: 2, start: 0, end: 5 } });
    await collectDiff({ ...await options(sharded), shard: { index: 1, count: 2, start: 5, end: 11 } });
    assertEquals(await mergeDiffShards(sharded), { shards: 2, prompts: 11 });
    let worst = 0;
    for (const model of ["base", "chat"]) {
      const one = (await readStats(statsPath(whole, model))).stats.finalize();
      const merged = await readStats(statsPath(sharded, model));
      assertEquals(merged.metadata.num_prompts, 11);
      const two = merged.stats.finalize();
      for (const type of TOKEN_TYPES) {
        for (const metric of METRICS) {
          const [a, b] = [two[type][metric], one[type][metric]];
          for (let j = 0; j < b.length; j++) {
            const error = Math.abs(a[j] - b[j]);
            worst = Math.max(worst, error / Math.max(Math.abs(b[j]), 1e-30));
            assert(
              error <= 1e-6 * Math.abs(b[j]) + 1e-12,
              `${model} ${type} ${metric}[${j}]: merged ${a[j]} vs one run ${b[j]}`,
            );
          }
        }
      }
    }
    console.log(`worst relative difference ${worst}`);
    for (const model of ["base", "chat"]) {
      const one = (await readStats(statsPath(whole, model))).examples!;
      const merged = (await readStats(statsPath(sharded, model))).examples!;
      assertSameTopExamples(merged, one, `${model}: merged shards' top examples vs one run`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a checkpoint of another run is refused on --resume, in one line naming it", async () => {
  const dir = await tempDir("diff-checkpoint-");
  try {
    const path = join(dir, "checkpoint_base.safetensors");
    await writeStats(path, FeatureStats.empty(["asst"], 4), {
      run_fingerprint: "another-run:base:all",
      next_prompt: 4,
      token_types: ["asst"],
      num_features: 4,
    });
    // Refused before any model or encoder is touched.
    const unused = {} as never;
    const refused = await collectStats({
      handle: unused,
      encoder: { sae: { config: { dIn: 8, dSae: 4 } } } as unknown as SaeEncoder,
      layer: 0,
      prompts: [],
      tokenTypes: ["asst"],
      batchSize: 4,
      checkpointEvery: 1,
      checkpointPath: path,
      fingerprint: "this-run:base:all",
      resume: true,
    }).then(() => undefined, (error: unknown) => error);
    assert(refused instanceof UserError, String(refused));
    assertMatch(refused.message, /checkpoint_base\.safetensors belongs to another run/);
    assert(!refused.message.includes("\n"), "one line");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
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
    await collectDiff({ ...await options(out), neuronpediaId: "tiny-llama/2-test" });
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
    for (const tamper of [() => {}, () => Deno.remove(join(out, "prompts.json"))]) {
      await tamper();
      const refused = await report({ baseUrl: "http://127.0.0.1:9", cacheDir }).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert(refused instanceof UserError && !refused.message.includes("\n"), String(refused));
      assertMatch(
        refused.message,
        /prompts\.json (holds other prompts than|is missing; it holds the prompts of) the statistics/,
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
