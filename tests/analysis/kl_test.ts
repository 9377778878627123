import { assert, assertClose, assertEquals } from "../assert.ts";
import { join } from "node:path";
import { parse } from "csv-parse/sync";
import { forwardBatch } from "../../lib/runtime/activations.ts";
import { type PreparedPrompt, TOKEN_TYPES } from "../../lib/runtime/chat.ts";
import { ensureFixtureModel } from "../../lib/fixtures/build.ts";
import { referenceForward } from "../../lib/fixtures/reference.ts";
import { histogram, klGroups, topKlTokens } from "../../lib/analysis/kl.ts";
import { runKl } from "../../lib/run/kl.ts";
import { writeKlOutputs } from "../../lib/report/kl.ts";
import { loadModel } from "../../lib/runtime/runtime.ts";
import { fixtureReference } from "../helpers.ts";
import { tempDir } from "../temp.ts";
import { dirOutput } from "../../lib/io/dir_output.ts";

/**
 * KL per token of the runtime's f32 logits against KL of the f64 reference logits. Both models'
 * logits are within ~1e-6 of the reference's scale, which moves a KL by about that much; observed
 * worst: printed by the test.
 */
const KL_TOLERANCE = { rtol: 1e-4, atol: 1e-5 };

/** log-softmax in f64. */
function logSoftmax(logits: Float64Array): Float64Array {
  const max = logits.reduce((m, x) => Math.max(m, x), -Infinity);
  const lse = max + Math.log(logits.reduce((s, x) => s + Math.exp(x - max), 0));
  return logits.map((x) => x - lse);
}

/** KL(chat ‖ base) per token from the f64 reference forward of both Llama fixtures, with each token's argmaxes. */
function referenceKl(prompts: readonly PreparedPrompt[]) {
  const b = fixtureReference("tiny-llama-base");
  const c = fixtureReference("tiny-llama-chat");
  const expected: number[] = [];
  const argmaxes: [number, number][] = [];
  const decisive: boolean[] = [];
  for (const prompt of prompts) {
    const pb = referenceForward(b.config, b.weights, prompt.ids, { withLogits: true }).logits;
    const pc = referenceForward(c.config, c.weights, prompt.ids, { withLogits: true }).logits;
    pc.forEach((chatLogits, t) => {
      const [lp, lq] = [logSoftmax(chatLogits), logSoftmax(pb[t])];
      let kl = 0;
      for (let v = 0; v < lp.length; v++) kl += Math.exp(lp[v]) * (lp[v] - lq[v]);
      expected.push(kl);
      const order = (x: Float64Array) => {
        let [first, second] = x[0] >= x[1] ? [0, 1] : [1, 0];
        for (let v = 2; v < x.length; v++) {
          if (x[v] > x[first]) [first, second] = [v, first];
          else if (x[v] > x[second]) second = v;
        }
        return [first, second];
      };
      const [oc, ob] = [order(chatLogits), order(pb[t])];
      argmaxes.push([oc[0], ob[0]]);
      // A near tie may flip in f32; only clear winners are compared.
      decisive.push(chatLogits[oc[0]] - chatLogits[oc[1]] > 1e-4 && pb[t][ob[0]] - pb[t][ob[1]] > 1e-4);
    });
  }
  return { expected, argmaxes, decisive };
}

const PROMPTS = ["Hi", "Explain the difference between TCP and UDP in two sentences."];

Deno.test("KL(chat ‖ base) per token on the Llama fixtures matches the f64 reference forward's log-softmax KL; argmaxes, groups and CSV agree", async () => {
  const [base, chat] = [await ensureFixtureModel("tiny-llama-base"), await ensureFixtureModel("tiny-llama-chat")];
  // One batch of two prompts of different lengths: the shorter one is padded and its pads are skipped.
  const run = await runKl({
    base,
    chat,
    prompts: PROMPTS,
    tokenTypes: TOKEN_TYPES,
    batchSize: 2,
    maxLength: 512,
    device: "cpu",
  });
  const { expected, argmaxes, decisive } = referenceKl(run.prompts);
  assertEquals(run.prompts[0].ids.length < run.prompts[1].ids.length, true);
  assertEquals(run.tokens.length, expected.length);
  assertClose(run.tokens.map((t) => t.kl), expected, { ...KL_TOLERANCE, label: "KL per token" });
  console.log(
    `KL worst |ours - f64|: ${Math.max(...run.tokens.map((t, i) => Math.abs(t.kl - expected[i]))).toExponential(2)}`,
  );
  run.tokens.forEach((t, i) => {
    if (decisive[i]) assertEquals([t.chatTop, t.baseTop], argmaxes[i], `argmaxes of token ${i}`);
  });
  assert(decisive.filter(Boolean).length > expected.length / 2, "most tokens have a clear argmax");

  // Groups against the definitions: the read positions of each prompt, and every token.
  const groups = klGroups(run.tokens, TOKEN_TYPES);
  const offsets = [0, run.prompts[0].ids.length];
  TOKEN_TYPES.forEach((type, k) => {
    const values = run.prompts.map((p, i) => expected[offsets[i] + p.positions[k]]).sort((x, y) => x - y);
    const group = groups.find((g) => g.by === "token_type" && g.key === type)!;
    assertEquals(group.count, 2);
    assertClose([group.mean, group.median], [(values[0] + values[1]) / 2, (values[0] + values[1]) / 2], {
      ...KL_TOLERANCE,
      label: type,
    });
  });
  const all = groups.find((g) => g.key === "all")!;
  const sorted = [...expected].sort((x, y) => x - y);
  const n = sorted.length;
  const median = n % 2 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
  assertClose([all.mean, all.median], [expected.reduce((s, x) => s + x, 0) / n, median], KL_TOLERANCE);
  // Position 0 exists in both prompts; the last position of the longer one in just one.
  const positions = groups.filter((g) => g.by === "position");
  assertEquals([positions[0].count, positions.at(-1)!.count], [2, 1]);
  const hist = histogram(expected, 7);
  assertEquals(hist.counts.reduce((s, x) => s + x, 0), n);
  assertEquals(hist.counts.at(-1)! >= 1, true, "the largest value falls in the last bin");

  // The written files: one row per token, the top rows in descending order.
  const dir = await tempDir();
  await writeKlOutputs(dirOutput(dir), run, { title: "t", tokenTypes: TOKEN_TYPES, top: 5 });
  const rows = parse(await Deno.readTextFile(join(dir, "kl_tokens.csv")), { columns: true }) as Record<
    string,
    string
  >[];
  assertEquals(rows.length, n);
  assertClose(rows.map((r) => Number(r.kl)), run.tokens.map((t) => t.kl), { rtol: 1e-7, atol: 0, label: "CSV" });
  const top = parse(await Deno.readTextFile(join(dir, "kl_top.csv")), { columns: true }) as Record<string, string>[];
  assertEquals(top.map((r) => Number(r.kl)), topKlTokens(run.tokens, 5).map((t) => t.kl));
  assertClose(top.map((r) => Number(r.kl)), sorted.slice(-5).reverse(), { ...KL_TOLERANCE, label: "top 5" });
});

Deno.test("KL on webgpu, the logits gathered on the device from the models' output buffers, matches the f64 reference", async () => {
  const run = await runKl({
    base: await ensureFixtureModel("tiny-llama-base"),
    chat: await ensureFixtureModel("tiny-llama-chat"),
    prompts: PROMPTS,
    tokenTypes: TOKEN_TYPES,
    batchSize: 2,
    maxLength: 512,
    device: "webgpu",
    dtype: "fp32",
  });
  const { expected } = referenceKl(run.prompts);
  assertClose(run.tokens.map((t) => t.kl), expected, { ...KL_TOLERANCE, label: "KL per token (webgpu)" });
  // What makes it the device path: a model loaded as runKl loads it returns its logits in a GPU buffer.
  const handle = await loadModel(await ensureFixtureModel("tiny-llama-chat"), {
    device: "webgpu",
    dtype: "fp32",
    outputsOnGpu: true,
  });
  const { outputs } = await forwardBatch(handle, [run.prompts[0].ids]);
  assertEquals([outputs.logits.location, outputs.logits.type], ["gpu-buffer", "float32"]);
  for (const output of Object.values(outputs)) output.dispose();
  await handle.dispose();
});
