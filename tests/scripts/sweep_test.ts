import { assert, assertClose, assertEquals, assertMatch } from "../assert.ts";
import { join } from "node:path";
import { parse } from "csv-parse/sync";
import {
  preparePrompts,
  renderNormal,
  renderSwapped,
  SWAPPED_HEADER,
  tokenizeRendered,
} from "../../lib/runtime/chat.ts";
import { ensureFixtureModel } from "../../lib/fixtures/build.ts";
import { referenceForward } from "../../lib/fixtures/reference.ts";
import { ROLE_PROMPTS } from "../../lib/fixtures/role_prompts.ts";
import { openSafetensors } from "../../lib/io/safetensors_file.ts";
import { visitPage } from "../browser.ts";
import { fixtureHandle, fixtureReference, runScript } from "../helpers.ts";
import { tempDir } from "../temp.ts";

function cosine(a: Float64Array, b: Float64Array): number {
  let dot = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return dot / Math.sqrt(na * nb);
}

for (const [name, device] of [["tiny-gemma2-chat", "webgpu"], ["tiny-llama-chat", "cpu"]]) {
  Deno.test(`sweep-layers on ${name} (${device}): table and contrast vectors equal the f64 reference`, async () => {
    const out = await tempDir("sweep-");
    const run = await runScript("sweep_layers.ts", [
      "--model",
      await ensureFixtureModel(name),
      "--out-dir",
      out,
      "--device",
      device,
    ]);
    assertEquals(run.code, 0, run.stderr);
    const handle = await fixtureHandle(name, "cpu");
    const { config, weights } = fixtureReference(name);
    const last = (render: (p: string) => string) =>
      ROLE_PROMPTS.map((p) => {
        const ids = tokenizeRendered(handle, render(p));
        return referenceForward(config, weights, ids).residuals.map((layer) => layer[ids.length - 1]);
      });
    const normal = last((p) => renderNormal(handle, p));
    const swapped = last((p) => renderSwapped(handle, p));
    const rows: Record<string, string>[] = parse(await Deno.readTextFile(join(out, "layer_similarity.csv")), {
      columns: true,
    });
    assertEquals(rows.length, config.numLayers);
    const file = await openSafetensors(join(out, "contrast_vectors.safetensors"));
    const n = ROLE_PROMPTS.length;
    for (let layer = 0; layer < config.numLayers; layer++) {
      const a = normal.map((r) => r[layer + 1]);
      const b = swapped.map((r) => r[layer + 1]);
      let nn = 0, ss = 0, cross = 0;
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < n; j++) {
          cross += cosine(a[i], b[j]) / (n * n);
          if (j > i) {
            nn += cosine(a[i], a[j]) / (n * (n - 1) / 2);
            ss += cosine(b[i], b[j]) / (n * (n - 1) / 2);
          }
        }
      }
      const row = rows[layer];
      const expected = [nn, ss, cross, (nn + ss) / 2, (nn + ss) / 2 - cross];
      // The seed notebook's column names (df_summary).
      const got = [
        "avg_normal_normal",
        "avg_swapped_swapped",
        "avg_cross_category",
        "avg_within_category",
        "similarity_difference",
      ].map((k) => Number(row[k]));
      got.forEach((g, k) =>
        assert(Math.abs(g - expected[k]) < 1e-5, `layer ${layer} column ${k}: ${g} vs ${expected[k]}`)
      );
      const contrast = Float64Array.from(
        { length: config.hiddenSize },
        (_, i) => a.reduce((s, v) => s + v[i], 0) / n - b.reduce((s, v) => s + v[i], 0) / n,
      );
      // Per element; observed worst 6.6e-6 absolute (components up to 3).
      assertClose(await file.float32(`contrast.${layer}`), contrast, {
        rtol: 1e-4,
        atol: 1e-4,
        label: `contrast ${layer}`,
      });
    }
    if (device === "webgpu") {
      const visit = await visitPage<number>(
        join(out, "cosine_similarity.html"),
        `document.getElementById("figure").data.length`,
        new URL("../../results/screenshots/cosine_similarity.png", import.meta.url).pathname,
      );
      assertEquals(visit.errors, []);
      assertEquals(visit.result, 3);
    }
  });
}

for (const name of ["tiny-gemma2-chat", "tiny-llama-chat"]) {
  Deno.test(`sweep-layers --position on ${name}: swapped prompts are read at the turn header after the prompt`, async () => {
    const handle = await fixtureHandle(name, "cpu");
    const types = ["asst", "endheader", "newline"] as const;
    const swapped = preparePrompts(handle, ROLE_PROMPTS, {
      render: (p) => renderSwapped(handle, p),
      types,
      header: SWAPPED_HEADER,
    });
    const decode = (id: number) => handle.tokenizer.decode([id], { skip_special_tokens: false });
    for (const prepared of swapped) {
      assert(prepared.headerFound, prepared.text);
      const [asst, endheader] = prepared.positions;
      assertEquals(decode(prepared.ids[asst]), "user", "asst reads the role token of the turn after the prompt");
      assertMatch(decode(prepared.ids[endheader]), /^(<\|end_header_id\|>|\n)$/);
      // Every read position lies after the prompt's last token.
      const promptIds = tokenizeRendered(handle, prepared.prompt);
      const promptEnd = prepared.ids.lastIndexOf(promptIds.at(-1)!);
      assert(Math.min(...prepared.positions) > promptEnd, `${prepared.positions} after ${promptEnd}`);
    }
    const out = await tempDir("sweep-position-");
    try {
      const run = await runScript("sweep_layers.ts", [
        "--model",
        await ensureFixtureModel(name),
        "--position",
        "asst",
        "--out-dir",
        out,
        "--device",
        "cpu",
      ]);
      assertEquals(run.code, 0, run.stderr);
      const rows: Record<string, string>[] = parse(await Deno.readTextFile(join(out, "layer_similarity.csv")), {
        columns: true,
      });
      // Read before the prompt, every swapped vector would be the same one (cosine 1).
      for (const row of rows) {
        assert(Number(row.avg_swapped_swapped) < 0.9999, `layer ${row.layer}: ${row.avg_swapped_swapped}`);
      }
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  });
}
