import { assert, assertClose, assertEquals } from "../assert.ts";
import { join } from "node:path";
import {
  activationDifferences,
  contrastCosines,
  firstTokenKey,
  lensLogits,
  lensTopTokens,
  loadContrastVectors,
  loadUnembedding,
} from "../../lib/analysis/adl.ts";
import { TOKEN_TYPES } from "../../lib/runtime/chat.ts";
import { UserError } from "../../lib/core/errors.ts";
import { ensureFixtureModel } from "../../lib/fixtures/build.ts";
import { referenceForward } from "../../lib/fixtures/reference.ts";
import { acquireGpu } from "../../lib/backend/gpu.ts";
import { writeSafetensors } from "../../lib/io/safetensors_file.ts";
import { SeededRandom } from "../../lib/core/random.ts";
import { adlTensorName, writeAdlOutputs } from "../../lib/report/adl.ts";
import { loadVector } from "../../lib/io/vectors.ts";
import { fixtureReference } from "../helpers.ts";
import { tempDir } from "../temp.ts";
import { dirOutput } from "../../lib/io/dir_output.ts";

/** Mean residual differences, f32 runtime against f64 (residuals agree to ~2e-5 absolute, values up to ~11). */
const DIFF_TOLERANCE = { rtol: 1e-4, atol: 1e-4 };
/** Lens logits: the f64 lens of the runtime's difference against the f64 lens of the reference difference. */
const LENS_TOLERANCE = { rtol: 1e-3, atol: 1e-3 };

const PROMPTS = ["Hi there", "Write a haiku about gradient descent."];
const LAYER = 1;
const FIRST_N = 3;

/** W_U · RMSNorm(v), straight from the HF definitions, in f64. */
function referenceLens(name: string, v: ArrayLike<number>): Float64Array {
  const { config, weights } = fixtureReference(name);
  // Gemma2RMSNorm and Gemma3RMSNorm scale by (1 + w) (modeling_gemma2.py, modeling_gemma3.py); the others by w.
  const gemma = config.family === "gemma2" || config.family === "gemma3";
  const w = weights.get("model.norm.weight")!.data;
  const d = config.hiddenSize;
  let ms = 0;
  for (let i = 0; i < d; i++) ms += v[i] * v[i] / d;
  const x = Array.from({ length: d }, (_, i) => v[i] / Math.sqrt(ms + config.rmsNormEps) * (gemma ? 1 + w[i] : w[i]));
  const head = weights.get(config.tieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight")!.data;
  return Float64Array.from({ length: config.vocabSize }, (_, t) => {
    let dot = 0;
    for (let i = 0; i < d; i++) dot += head[t * d + i] * x[i];
    return dot;
  });
}

function argsort(values: Float64Array, n: number, sign: number): number[] {
  return [...values.keys()].sort((a, b) => sign * (values[b] - values[a])).slice(0, n);
}

Deno.test("ADL on the Llama fixtures: mean(chat − base) per read position and first tokens, its lens top tokens and contrast cosines match f64; the vectors load for steer", async () => {
  const [base, chat] = [await ensureFixtureModel("tiny-llama-base"), await ensureFixtureModel("tiny-llama-chat")];
  const differences = await activationDifferences({
    base,
    chat,
    prompts: PROMPTS,
    layer: LAYER,
    tokenTypes: TOKEN_TYPES,
    firstN: FIRST_N,
    batchSize: 2,
    maxLength: 512,
    device: "cpu",
  });
  assertEquals(differences.keys, [...TOKEN_TYPES, ...[0, 1, 2].map(firstTokenKey)]);
  assertEquals(differences.counts, [2, 2, 2, 2, 2, 2]);

  // The oracle: the f64 forward of both models on independently rendered ids; a Llama 3 generation
  // prompt ends with the assistant header, so its last three tokens are asst, endheader, newline.
  const b = fixtureReference("tiny-llama-base");
  const c = fixtureReference("tiny-llama-chat");
  const { transformers } = await import("../../lib/runtime/runtime.ts");
  const tokenizer = await transformers.AutoTokenizer.from_pretrained(chat);
  const d = c.config.hiddenSize;
  const expected = differences.keys.map(() => new Float64Array(d));
  for (const prompt of PROMPTS) {
    const text = tokenizer.apply_chat_template([{ role: "user", content: prompt }], {
      add_generation_prompt: true,
      tokenize: false,
    }) as string;
    const formatted = tokenizer.encode(text, { add_special_tokens: false });
    const plain = tokenizer.encode(prompt, { add_special_tokens: true }).slice(0, FIRST_N);
    const forward = (ids: number[]) =>
      [b, c].map((m) => referenceForward(m.config, m.weights, ids, { layers: LAYER + 1 }).residuals[LAYER + 1]);
    const runs = new Map([[formatted, forward(formatted)], [plain, forward(plain)]]);
    const at = (ids: number[], t: number) => {
      const [rb, rc] = runs.get(ids)!;
      return rc[t].map((x, i) => x - rb[t][i]);
    };
    const targets: [number[], number][] = [
      ...[3, 2, 1].map((back) => [formatted, formatted.length - back] as [number[], number]),
      ...[0, 1, 2].map((t) => [plain, t] as [number[], number]),
    ];
    targets.forEach(([ids, t], k) => at(ids, t).forEach((x, i) => expected[k][i] += x / PROMPTS.length));
  }
  differences.keys.forEach((key, k) =>
    assertClose(differences.mean[k], expected[k], { ...DIFF_TOLERANCE, label: key })
  );

  // The lens: our unembedding path on our differences against the reference lens of the reference ones.
  const lens = await lensLogits(await loadUnembedding(differences.chatDir), differences.mean);
  differences.keys.forEach((key, k) => {
    const reference = referenceLens("tiny-llama-chat", expected[k]);
    const ours = lensTopTokens(lens[k], 20);
    const [promoted, suppressed] = [argsort(reference, 20, 1), argsort(reference, 20, -1)];
    assertEquals(ours.promoted.map((t) => t.tokenId), promoted, `${key} promoted`);
    assertEquals(ours.suppressed.map((t) => t.tokenId), suppressed, `${key} suppressed`);
    assertClose(ours.promoted.map((t) => t.logit), promoted.map((t) => reference[t]), {
      ...LENS_TOLERANCE,
      label: `${key} promoted logits`,
    });
  });

  // Cosines with a sweep file's contrast vectors, against f64 cosines.
  const dir = await tempDir();
  const r = new SeededRandom(3);
  const contrastPath = join(dir, "contrast_vectors.safetensors");
  const contrast = [0, 1, 2, 3].map(() => r.normals(d));
  contrast[2] = Float32Array.from(differences.mean[0], (x, i) => x + 0.1 * contrast[2][i]); // close to asst
  await writeSafetensors(
    contrastPath,
    Object.fromEntries(contrast.map((v, l) => [`contrast.${l}`, { dtype: "F32" as const, shape: [d], data: v }])),
    { metadata: JSON.stringify({ read_position: "asst" }) },
  );
  const vectors = await loadContrastVectors(contrastPath);
  assertEquals([vectors.layers, vectors.readPosition], [[0, 1, 2, 3], "asst"]);
  const cosines = await contrastCosines(await acquireGpu(), differences.mean, vectors);
  const cos = (x: ArrayLike<number>, y: ArrayLike<number>) => {
    let [dot, nx, ny] = [0, 0, 0];
    for (let i = 0; i < d; i++) [dot, nx, ny] = [dot + x[i] * y[i], nx + x[i] ** 2, ny + y[i] ** 2];
    return dot / Math.sqrt(nx * ny);
  };
  const expectedCosines = differences.mean.flatMap((v) => contrast.map((w) => cos(v, w)));
  assertClose(cosines, expectedCosines, { rtol: 1e-4, atol: 1e-5, label: "cosines" });
  assert(cosines[2] > 0.9, `asst against the nearby contrast vector: ${cosines[2]}`);

  // The written steering vectors are what steer's loader reads.
  const top = lens.map((l) => lensTopTokens(l, 20));
  const files = await writeAdlOutputs(dirOutput(dir), {
    differences,
    top,
    contrast: vectors,
    cosines,
    decode: (ids) => tokenizer.decode(ids),
    info: { base, chat, prompts: PROMPTS.length },
  });
  assertEquals(files, ["adl_top_tokens.csv", "adl_contrast_cosine.csv", "adl_vectors.safetensors", "adl.html"]);
  const loaded = await loadVector(join(dir, "adl_vectors.safetensors"), {
    layer: LAYER,
    dModel: d,
    name: adlTensorName("endheader"),
  });
  assertEquals([...loaded], [...Float32Array.from(differences.mean[1])]);
});

Deno.test("the lens reads Gemma 2's and Gemma 3's tied embedding and (1 + w) norm from BF16 checkpoints; ONNX exports are refused", async () => {
  for (const name of ["tiny-gemma2-chat", "tiny-gemma3-hf"]) {
    const unembedding = await loadUnembedding(await ensureFixtureModel(name));
    const v = Float64Array.from(new SeededRandom(8).normals(unembedding.dModel));
    const [ours] = await lensLogits(unembedding, [v]);
    assertClose(ours, referenceLens(name, v), { rtol: 1e-6, atol: 1e-6, label: `${name} lens` });
  }
  const exportDir = await tempDir();
  await Deno.writeTextFile(join(exportDir, "config.json"), "{}");
  try {
    await loadUnembedding(exportDir);
    throw new Error("expected a failure");
  } catch (error) {
    assert(error instanceof UserError && /ONNX export/.test(error.message), String(error));
  }
});
