import { assert, assertClose, assertEquals, assertMatch } from "../assert.ts";
import { join } from "node:path";
import { parse } from "csv-parse/sync";
import { TOKEN_TYPES } from "../../lib/runtime/chat.ts";
import { ensureFixtureCrosscoder, ensureFixtureModel } from "../../lib/fixtures/build.ts";
import { type ReferenceCrosscoder, referenceCrosscoderEncode } from "../../lib/fixtures/crosscoder_reference.ts";
import { DEAD_LATENT, DECODER_NORM_PATTERN } from "../../lib/fixtures/crosscoders.ts";
import { DEMO_PROMPTS } from "../../lib/fixtures/prompts.ts";
import { referenceForward } from "../../lib/fixtures/reference.ts";
import { openSafetensors } from "../../lib/io/safetensors_file.ts";
import { transformers } from "../../lib/runtime/runtime.ts";
import { METRICS } from "../../lib/features/stats.ts";
import { fixtureReference, meaningfulLines, runScript } from "../helpers.ts";
import { referenceStats } from "../reference_stats.ts";
import { tempDir } from "../temp.ts";

const CROSSCODER = "tiny-llama-crosscoder-L2-k4";
const LAYER = 2;
const PROMPTS = DEMO_PROMPTS.slice(0, 3);

/** The crosscoder as its files state it (dictionary_learning's tensor names), read without lib/crosscoder. */
async function crosscoderFromFiles(dir: string): Promise<ReferenceCrosscoder> {
  const config = JSON.parse(await Deno.readTextFile(join(dir, "config.json")));
  assertEquals(config.code_normalization, "CROSSCODER", "the f64 encode below assumes Σ_m ‖W_dec[m, j]‖");
  const file = await openSafetensors(join(dir, "model.safetensors"));
  return {
    dModel: config.activation_dim,
    dict: config.dict_size,
    wEnc: await file.float32("encoder.weight"),
    bEnc: await file.float32("encoder.bias"),
    wDec: await file.float32("decoder.weight"),
    bDec: await file.float32("decoder.bias"),
    activation: "batchtopk",
    threshold: (await file.float32("threshold"))[0],
    k: config.k,
  };
}

/**
 * Per latent, from the textbook formulas in f64: decoder norms, r = ‖c‖ / (‖b‖ + ‖c‖), Δnorm =
 * ½((‖c‖ − ‖b‖) / max + 1), cosine, and Minder et al.'s tags (threshold 0.1, strict).
 */
function referenceDecoder(cc: ReferenceCrosscoder) {
  return Array.from({ length: cc.dict }, (_, j) => {
    const b = Array.from(cc.wDec.subarray(j * cc.dModel, (j + 1) * cc.dModel));
    const c = Array.from(cc.wDec.subarray((cc.dict + j) * cc.dModel, (cc.dict + j + 1) * cc.dModel));
    const norm = (v: number[]) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
    const [nb, nc] = [norm(b), norm(c)];
    const normDiff = ((nc - nb) / Math.max(nb, nc) + 1) / 2;
    const tag = normDiff > 0.9
      ? "chat_only"
      : normDiff < 0.1
      ? "base_only"
      : Math.abs(normDiff - 0.5) < 0.1
      ? "shared"
      : "other";
    const dot = b.reduce((s, x, i) => s + x * c[i], 0);
    return { nb, nc, r: nc / (nb + nc), normDiff, cosine: nb * nc > 0 ? dot / (nb * nc) : 0, tag };
  });
}

Deno.test("crosscoder: the script's CSV equals f64 decoder statistics, tags and raw-f activation statistics of the f64 forward; the histogram counts the tags; bad input is one line", async () => {
  const [base, chat, ccDir] = [
    await ensureFixtureModel("tiny-llama-base"),
    await ensureFixtureModel("tiny-llama-chat"),
    await ensureFixtureCrosscoder(CROSSCODER),
  ];
  const out = await tempDir("crosscoder-");
  const promptFile = join(out, "prompts.json");
  await Deno.writeTextFile(promptFile, JSON.stringify(PROMPTS));
  // The script runs in a child process while this one computes the reference.
  const script = runScript("crosscoder.ts", [
    ...["--base", base, "--chat", chat, "--crosscoder", ccDir, "--prompts", promptFile],
    // Batches of 2 of 3 prompts: padding in the forward passes, and statistics over two encoder blocks.
    ...["--batch-size", "2", "--device", "cpu", "--out-dir", out],
  ]);

  const cc = await crosscoderFromFiles(ccDir);
  const tokenizer = await transformers.AutoTokenizer.from_pretrained(chat);
  const ids = PROMPTS.map((p) =>
    tokenizer.encode(
      tokenizer.apply_chat_template([{ role: "user", content: p }], { add_generation_prompt: true, tokenize: false }),
      { add_special_tokens: false },
    )
  );
  // A generation prompt ends in the assistant header: its last three tokens are the read positions.
  for (const s of ids) {
    assertEquals(s.slice(-3).map((id) => tokenizer.decode([id])), ["assistant", "<|end_header_id|>", "\n\n"]);
  }
  const residuals = ["base", "chat"].map((m) => {
    const { config, weights } = fixtureReference(`tiny-llama-${m}`);
    return ids.map((s) => referenceForward(config, weights, s, { layers: LAYER + 1 }).residuals[LAYER + 1]);
  });
  const activations = TOKEN_TYPES.map((_, t) =>
    ids.map((s, n) => {
      const at = s.length - 3 + t;
      return referenceCrosscoderEncode(cc, residuals[0][n][at], residuals[1][n][at]);
    })
  );
  const stats = activations.map(referenceStats);
  const decoder = referenceDecoder(cc);

  const result = await script;
  assertEquals(result.code, 0, result.stderr);
  const rows: Record<string, string>[] = parse(await Deno.readTextFile(join(out, "crosscoder_latents.csv")), {
    columns: true,
  });
  assertEquals(rows.map((r) => Number(r.latent)), decoder.map((_, j) => j));
  const column = (name: string) => rows.map((r) => Number(r[name]));
  const live = decoder.map((_, j) => j).filter((j) => j !== DEAD_LATENT);
  const pick = <T>(values: T[]) => live.map((j) => values[j]);
  // Norms of f32 decoder vectors summed in f64 on both sides: only the last digit may differ.
  const exact = { rtol: 1e-12, atol: 1e-15 };
  assertClose(column("norm_base"), decoder.map((d) => d.nb), { ...exact, label: "norm_base" });
  assertClose(column("norm_chat"), decoder.map((d) => d.nc), { ...exact, label: "norm_chat" });
  assertClose(pick(column("relative_norm")), pick(decoder.map((d) => d.r)), { ...exact, label: "relative_norm" });
  assertClose(pick(column("norm_diff")), pick(decoder.map((d) => d.normDiff)), { ...exact, label: "norm_diff" });
  assertClose(column("cosine"), decoder.map((d) => d.cosine), { ...exact, label: "cosine" });
  assertEquals([rows[DEAD_LATENT].relative_norm, rows[DEAD_LATENT].norm_diff, rows[DEAD_LATENT].tag], [
    "nan",
    "nan",
    "other",
  ]);
  assertEquals(pick(rows.map((r) => r.tag)), pick(decoder.map((d) => d.tag)), "tags");
  // The fixture's decoder norms were drawn to give these tags, away from the thresholds.
  for (let j = 3; j < cc.dict; j++) {
    assertEquals(rows[j].tag, DECODER_NORM_PATTERN[(j - 3) % DECODER_NORM_PATTERN.length].tag, `tag of ${j}`);
  }

  // Raw f statistics per read position; f32 runtime residuals and GPU sums against f64: observed ~1e-6.
  TOKEN_TYPES.forEach((type, t) => {
    for (const metric of METRICS) {
      assertClose(column(`${metric}_${type}`), stats[t][metric], {
        rtol: 1e-4,
        atol: 1e-5,
        label: `${metric} ${type}`,
      });
    }
  });
  // Latents that fire on some prompts and not others at a read position: the threshold rule matters here.
  const partial = stats.flatMap((s) => Array.from(s.num_active)).filter((n) => n > 0 && n < PROMPTS.length).length;
  assert(partial >= 5, `${partial} (latent, token type) cells fire on some prompts only`);

  // The page's histogram: stacked bars per tag whose counts are the latents of that tag (the dead one left out).
  const html = await Deno.readTextFile(join(out, "crosscoder.html"));
  const figure = JSON.parse(html.match(/const figure = (\{.*\});\n/)![1]) as { data: { name: string; y: number[] }[] };
  for (const trace of figure.data) {
    const expected = live.filter((j) => decoder[j].tag === trace.name).length;
    assertEquals(trace.y.reduce((s, x) => s + x, 0), expected, `${trace.name} bars`);
  }

  // A crosscoder of another layer: one line naming the fix, before any model is loaded.
  const wrong = await runScript("crosscoder.ts", [
    ...["--base", base, "--chat", chat, "--crosscoder", ccDir, "--layer", "1", "--out-dir", out],
  ]);
  assertEquals(wrong.code, 1);
  const lines = meaningfulLines(wrong.stderr);
  assertEquals(lines.length, 1, wrong.stderr);
  assertMatch(lines[0], /^error: crosscoder .* was trained on the output of layer 2, not 1: pass --layer 2/);
});
