import { assert, assertClose, assertEquals } from "../assert.ts";
import { join } from "node:path";
import { UserError } from "../../lib/core/errors.ts";
import { ensureFixtureSae, fixtureReferenceSae } from "../../lib/fixtures/build.ts";
import { SeededRandom } from "../../lib/core/random.ts";
import { referenceEncode } from "../../lib/fixtures/sae_reference.ts";
import { FIXTURE_SAES } from "../../lib/fixtures/saes.ts";
import { acquireGpu } from "../../lib/backend/gpu.ts";
import { encodeSafetensors } from "../../lib/io/safetensors.ts";
import { GpuSaeEncoder } from "../../lib/kernels/sae_encode.ts";
import { CpuSaeEncoder } from "../../lib/encoders/cpu.ts";
import { loadSae } from "../../lib/sae/load.ts";
import { tempDir } from "../temp.ts";

/**
 * GPU (f32) against f64 encodings, per element: observed errors are at most 2.1e-6 absolute on values
 * up to 12 (f32 accumulation over d_in), inside the 1e-5 floor alone. A feature
 * whose pre-activation sat within rounding of its threshold would fail this by a whole threshold, so
 * it also checks that the active sets agree.
 */
const ENCODE_TOLERANCE = { rtol: 1e-5, atol: 1e-5 };

Deno.test("every fixture SAE format loads and encodes on the GPU and the CPU like its reference", async () => {
  const gpu = await acquireGpu();
  for (const spec of FIXTURE_SAES) {
    const reference = await fixtureReferenceSae(spec.name);
    const sae = await loadSae(await ensureFixtureSae(spec.name), { dModel: reference.dIn });
    assert(sae.config.format === spec.format, spec.name);
    assertEquals(sae.config.architecture, spec.architecture ?? "jumprelu", spec.name);
    if (spec.format !== "gemmascope") assertEquals(sae.config.hookLayer, spec.layer, `${spec.name} layer`);
    const x = new SeededRandom(4).normals(3 * reference.dIn, 3);
    for (const encoder of [await GpuSaeEncoder.create(gpu, sae), await CpuSaeEncoder.create(sae)]) {
      const f = await encoder.encode(x, 3);
      for (let r = 0; r < 3; r++) {
        const expected = referenceEncode(reference, x.subarray(r * reference.dIn, (r + 1) * reference.dIn));
        const active = expected.filter((v) => v > 0).length;
        assert(active > 2 && active < reference.dSae - 2, `${spec.name}: a mix of active and silent features`);
        assertClose(f.subarray(r * reference.dSae, (r + 1) * reference.dSae), expected, {
          ...ENCODE_TOLERANCE,
          label: `${spec.name} on ${encoder instanceof GpuSaeEncoder ? "the GPU" : "the CPU"}, row ${r}`,
        });
      }
      encoder.destroy();
    }
  }
});

Deno.test("an SAE of another d_model, a missing directory and a non-SAE directory are user errors", async () => {
  const dir = await ensureFixtureSae("tiny-gemma2-sae-gemmascope");
  const cases: [() => Promise<unknown>, RegExp][] = [
    [() => loadSae(dir, { dModel: 64 }), /expects d_model 48 but the model has 64/],
    [() => loadSae("./no/such/sae"), /SAE directory not found/],
    [async () => loadSae(await tempDir()), /is not an SAE directory/],
  ];
  for (const [run, pattern] of cases) {
    try {
      await run();
      throw new Error("expected a failure");
    } catch (error) {
      assert(error instanceof UserError && pattern.test(error.message), String(error));
    }
  }
});

Deno.test("older SAELens configs (hook_point, activation_fn_str topk, boolean normalize_activations) load", async () => {
  const source = await ensureFixtureSae("tiny-llama-sae-saelens");
  const dir = await tempDir("old-saelens-");
  await Deno.copyFile(`${source}/sae_weights.safetensors`, `${dir}/sae_weights.safetensors`);
  await Deno.writeTextFile(
    `${dir}/cfg.json`,
    JSON.stringify({
      d_in: 64,
      d_sae: 256,
      hook_point: "blocks.2.hook_resid_post",
      activation_fn_str: "topk",
      activation_fn_kwargs: { k: 5 },
      normalize_activations: false,
      apply_b_dec_to_input: true,
      model_name: "tiny-llama-base",
    }),
  );
  const sae = await loadSae(dir, { dModel: 64 });
  assert(
    sae.config.architecture === "topk" && sae.config.k === 5 && sae.config.hookLayer === 2,
    JSON.stringify(sae.config),
  );
  assert(sae.config.applyBDecToInput);
  const encoder = await GpuSaeEncoder.create(await acquireGpu(), sae);
  const f = await encoder.encode(new SeededRandom(8).normals(64, 3), 1);
  assert(f.filter((v) => v > 0).length <= 5, "at most k features fire");
  encoder.destroy();
});

/** A random JumpReLU SAE in SAELens orientation: W_enc [dIn, dSae], per-feature thresholds. */
function randomJumpRelu(dIn: number, dSae: number, seed: number) {
  const r = new SeededRandom(seed);
  return {
    wEnc: r.normals(dIn * dSae, 1 / Math.sqrt(dIn)),
    bEnc: r.normals(dSae, 0.5),
    wDec: r.normals(dSae * dIn, 1 / Math.sqrt(dSae)),
    // Large next to the encoder's pre-activations, so that subtracting it or not changes every feature.
    bDec: r.normals(dIn, 1),
    threshold: Float32Array.from({ length: dSae }, () => 0.05 + 0.3 * r.uniform()),
  };
}

/** What SAELens's encode reads from cfg.json. */
interface SaeLensCfg {
  architecture: string;
  apply_b_dec_to_input: boolean;
  k?: number;
  rescale_acts_by_decoder_norm?: boolean;
}

/**
 * SAELens's encode, from its definitions (sae_lens/saes/*.py, jbloomAus/SAELens 6.18) on a file's own
 * tensors, in f64: sae_in = x − b_dec if apply_b_dec_to_input (`process_sae_in`); JumpReLU pre · [pre >
 * threshold] with pre = sae_in W_enc + b_enc; gated (`GatedSAE.encode`) [sae_in W_enc + b_gate > 0] ·
 * relu(sae_in (W_enc · exp(r_mag)) + b_mag); TopK (`TopKSAE.encode`) pre, times the decoder row's norm
 * when rescale_acts_by_decoder_norm, the k largest kept (ties: lower index) and ReLU'd.
 */
function saeLensEncode(cfg: SaeLensCfg, t: Record<string, Float32Array>, x: ArrayLike<number>): Float64Array {
  const [dIn, dSae] = [t.b_dec.length, t.W_enc.length / t.b_dec.length];
  const sae_in = Float64Array.from({ length: dIn }, (_, i) => x[i] - (cfg.apply_b_dec_to_input ? t.b_dec[i] : 0));
  const times = (bias: Float32Array, columnScale: (j: number) => number = () => 1) =>
    Float64Array.from({ length: dSae }, (_, j) => {
      let sum = bias[j];
      for (let i = 0; i < dIn; i++) sum += sae_in[i] * (t.W_enc[i * dSae + j] * columnScale(j));
      return sum;
    });
  if (cfg.architecture === "gated") {
    const gate = times(t.b_gate);
    const magnitude = times(t.b_mag, (j) => Math.exp(t.r_mag[j]));
    return gate.map((g, j) => (g > 0 ? 1 : 0) * Math.max(0, magnitude[j]));
  }
  const pre = times(t.b_enc);
  if (cfg.architecture === "jumprelu") return pre.map((p, j) => (p > t.threshold[j] ? p : 0));
  if (cfg.rescale_acts_by_decoder_norm) {
    for (let j = 0; j < dSae; j++) pre[j] *= Math.hypot(...t.W_dec.subarray(j * dIn, (j + 1) * dIn));
  }
  const kept = [...pre.keys()].sort((a, b) => pre[b] - pre[a] || a - b).slice(0, cfg.k);
  const f = new Float64Array(dSae);
  for (const j of kept) f[j] = Math.max(0, pre[j]);
  return f;
}

/** Writes an SAELens directory: `cfg` as cfg.json and `tensors` (F32, shapes from the SAE's sizes). */
async function writeSaeLens(cfg: Record<string, unknown>, tensors: Record<string, Float32Array>) {
  const dir = await tempDir("saelens-");
  const [dIn, dSae] = [Number(cfg.d_in), Number(cfg.d_sae)];
  const shape = (name: string, n: number) => name === "W_enc" ? [dIn, dSae] : name === "W_dec" ? [dSae, dIn] : [n];
  await Deno.writeTextFile(join(dir, "cfg.json"), JSON.stringify(cfg));
  await Deno.writeFile(
    join(dir, "sae_weights.safetensors"),
    encodeSafetensors(
      Object.fromEntries(
        Object.entries(tensors).map((
          [name, data],
        ) => [name, { dtype: "F32" as const, shape: shape(name, data.length), data }]),
      ),
    ),
  );
  return dir;
}

/**
 * Llama Scope's JumpReLU encode, from its definition: x̂ = x · sqrt(d_model) / average norm, minus
 * decoder.bias if apply_decoder_bias_to_pre_encoder; pre = x̂ encoder.weightᵀ + encoder.bias; the
 * threshold as SAELens (and so Neuronpedia) converts it: jump_relu_threshold times that input scale.
 */
function llamaScopeEncode(
  hp: {
    d_model: number;
    apply_decoder_bias_to_pre_encoder: boolean;
    jump_relu_threshold: number;
    dataset_average_activation_norm: { in: number };
  },
  t: { "encoder.weight": Float32Array; "encoder.bias": Float32Array; "decoder.bias": Float32Array },
  x: ArrayLike<number>,
): Float64Array {
  const dIn = hp.d_model;
  const dSae = t["encoder.bias"].length;
  const scale = Math.sqrt(dIn) / hp.dataset_average_activation_norm.in;
  const f = new Float64Array(dSae);
  for (let j = 0; j < dSae; j++) {
    let pre = t["encoder.bias"][j];
    for (let i = 0; i < dIn; i++) {
      const input = x[i] * scale - (hp.apply_decoder_bias_to_pre_encoder ? t["decoder.bias"][i] : 0);
      pre += input * t["encoder.weight"][j * dIn + i];
    }
    f[j] = pre > hp.jump_relu_threshold * scale ? pre : 0;
  }
  return f;
}

Deno.test("SAELens apply_b_dec_to_input and Llama Scope apply_decoder_bias_to_pre_encoder subtract b_dec as defined", async () => {
  const [dIn, dSae, rows] = [64, 96, 3];
  const gpu = await acquireGpu();
  const x = new SeededRandom(31).normals(rows * dIn, 3);
  const tensor = (shape: number[], data: Float32Array) => ({ dtype: "F32" as const, shape, data });
  for (const apply of [true, false]) {
    const saeLens = randomJumpRelu(dIn, dSae, 41);
    const saeLensTensors = {
      W_enc: saeLens.wEnc,
      b_enc: saeLens.bEnc,
      W_dec: saeLens.wDec,
      b_dec: saeLens.bDec,
      threshold: saeLens.threshold,
    };
    const cfg = { architecture: "jumprelu", d_in: dIn, d_sae: dSae, apply_b_dec_to_input: apply };
    const saeLensDir = await writeSaeLens(cfg, saeLensTensors);

    const llama = randomJumpRelu(dIn, dSae, 42);
    const llamaTensors = {
      // torch Linear layout: [out, in].
      "encoder.weight": Float32Array.from(
        { length: dSae * dIn },
        (_, k) => llama.wEnc[(k % dIn) * dSae + Math.floor(k / dIn)],
      ),
      "encoder.bias": llama.bEnc,
      "decoder.weight": Float32Array.from(
        { length: dIn * dSae },
        (_, k) => llama.wDec[(k % dSae) * dIn + Math.floor(k / dSae)],
      ),
      "decoder.bias": llama.bDec,
    };
    const hp = {
      d_model: dIn,
      d_sae: dSae,
      act_fn: "jumprelu",
      jump_relu_threshold: 0.2,
      norm_activation: "dataset-wise",
      dataset_average_activation_norm: { in: 12, out: 12 },
      apply_decoder_bias_to_pre_encoder: apply,
      hook_point_in: "blocks.2.hook_resid_post",
    };
    const llamaDir = await tempDir("llamascope-bdec-");
    await Deno.mkdir(join(llamaDir, "checkpoints"));
    await Deno.writeTextFile(join(llamaDir, "hyperparams.json"), JSON.stringify(hp));
    await Deno.writeFile(
      join(llamaDir, "checkpoints", "final.safetensors"),
      encodeSafetensors({
        "encoder.weight": tensor([dSae, dIn], llamaTensors["encoder.weight"]),
        "encoder.bias": tensor([dSae], llamaTensors["encoder.bias"]),
        "decoder.weight": tensor([dIn, dSae], llamaTensors["decoder.weight"]),
        "decoder.bias": tensor([dIn], llamaTensors["decoder.bias"]),
      }),
    );

    for (
      const [dir, expected] of [
        [saeLensDir, (v: Float32Array) => saeLensEncode(cfg, saeLensTensors, v)],
        [llamaDir, (v: Float32Array) => llamaScopeEncode(hp, llamaTensors, v)],
      ] as const
    ) {
      const sae = await loadSae(dir, { dModel: dIn });
      const encoder = await GpuSaeEncoder.create(gpu, sae);
      const f = await encoder.encode(x, rows);
      for (let r = 0; r < rows; r++) {
        const reference = expected(x.subarray(r * dIn, (r + 1) * dIn));
        const active = reference.filter((v) => v > 0).length;
        assert(active > 5 && active < dSae - 5, `${sae.config.format}: a mix of active and silent features`);
        assertClose(f.subarray(r * dSae, (r + 1) * dSae), reference, {
          ...ENCODE_TOLERANCE,
          label: `${sae.config.format} apply b_dec ${apply}, row ${r}`,
        });
      }
      encoder.destroy();
    }
  }
});

/**
 * A random SAELens SAE of `architecture` (gated or topk) whose decoder rows have norms between 0.25 and
 * 4, so that rescale_acts_by_decoder_norm changes which features win, and b_dec large enough to
 * change every feature when subtracted.
 */
function randomSaeLensTensors(
  architecture: "gated" | "topk",
  dIn: number,
  dSae: number,
  seed: number,
): Record<string, Float32Array> {
  const r = new SeededRandom(seed);
  const W_dec = r.normals(dSae * dIn, 1 / Math.sqrt(dIn));
  for (let j = 0; j < dSae; j++) {
    const norm = 0.25 * 16 ** r.uniform();
    for (let i = 0; i < dIn; i++) W_dec[j * dIn + i] *= norm;
  }
  const common = { W_enc: r.normals(dIn * dSae, 1 / Math.sqrt(dIn)), W_dec, b_dec: r.normals(dIn, 1) };
  if (architecture === "topk") return { ...common, b_enc: r.normals(dSae, 0.5) };
  return { ...common, b_gate: r.normals(dSae, 0.5), r_mag: r.normals(dSae, 0.5), b_mag: r.normals(dSae, 0.5) };
}

Deno.test("SAELens gated, and topk with and without rescale_acts_by_decoder_norm, encode on the GPU and the CPU as SAELens defines them", async () => {
  const [dIn, dSae, rows] = [64, 96, 3];
  const gpu = await acquireGpu();
  const x = new SeededRandom(32).normals(rows * dIn, 3);
  const cases: SaeLensCfg[] = [
    { architecture: "gated", apply_b_dec_to_input: true },
    { architecture: "gated", apply_b_dec_to_input: false },
    { architecture: "topk", apply_b_dec_to_input: true, k: 9, rescale_acts_by_decoder_norm: true },
    { architecture: "topk", apply_b_dec_to_input: false, k: 9, rescale_acts_by_decoder_norm: true },
    { architecture: "topk", apply_b_dec_to_input: true, k: 9, rescale_acts_by_decoder_norm: false },
  ];
  for (const [n, cfg] of cases.entries()) {
    const tensors = randomSaeLensTensors(cfg.architecture as "gated" | "topk", dIn, dSae, 50 + n);
    const dir = await writeSaeLens({ ...cfg, d_in: dIn, d_sae: dSae }, tensors);
    const sae = await loadSae(dir, { dModel: dIn });
    assertEquals([sae.config.architecture, sae.config.k], [cfg.architecture, cfg.k]);
    const label = JSON.stringify(cfg);
    for (const encoder of [await GpuSaeEncoder.create(gpu, sae), await CpuSaeEncoder.create(sae)]) {
      const f = await encoder.encode(x, rows);
      for (let r = 0; r < rows; r++) {
        const row = x.subarray(r * dIn, (r + 1) * dIn);
        const expected = saeLensEncode(cfg, tensors, row);
        // The definition matters here: without b_dec, or ranked without the rescaling, other features win.
        const other = cfg.architecture === "gated"
          ? saeLensEncode({ ...cfg, apply_b_dec_to_input: !cfg.apply_b_dec_to_input }, tensors, row)
          : saeLensEncode({ ...cfg, rescale_acts_by_decoder_norm: !cfg.rescale_acts_by_decoder_norm }, tensors, row);
        assert(expected.some((v, j) => (v > 0) !== (other[j] > 0)), `${label}: the variant changes the active set`);
        const active = expected.filter((v) => v > 0).length;
        assert(active > 3 && active < dSae - 3, `${label}: a mix of active and silent features`);
        assertClose(f.subarray(r * dSae, (r + 1) * dSae), expected, {
          ...ENCODE_TOLERANCE,
          label: `${label} on ${encoder instanceof GpuSaeEncoder ? "the GPU" : "the CPU"}, row ${r}`,
        });
      }
      encoder.destroy();
    }
  }
});

Deno.test("an SAELens cfg.json without apply_b_dec_to_input subtracts b_dec, as SAELens defaults it", async () => {
  const tensors = randomSaeLensTensors("topk", 8, 16, 60);
  const dir = await writeSaeLens(
    { architecture: "topk", d_in: 8, d_sae: 16, k: 3 },
    tensors,
  );
  assert((await loadSae(dir)).config.applyBDecToInput);
});

/** Writes a Gemma Scope 2 directory: `config` as config.json, `tensors` (F32, shapes given) as params.safetensors. */
async function writeGemmaScope2(config: Record<string, unknown>, tensors: Record<string, [number[], Float32Array]>) {
  const dir = await tempDir("gemmascope2-");
  await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(config));
  const entries = Object.entries(tensors).map((
    [name, [shape, data]],
  ) => [name, { dtype: "F32" as const, shape, data }]);
  await Deno.writeFile(join(dir, "params.safetensors"), encodeSafetensors(Object.fromEntries(entries)));
  return dir;
}

Deno.test("bad SAELens and Gemma Scope 2 files are one-line user errors", async () => {
  const [dIn, dSae] = [8, 16];
  const gated = randomSaeLensTensors("gated", dIn, dSae, 61);
  const { r_mag: _, ...noRMag } = gated;
  const base = { architecture: "gated", apply_b_dec_to_input: true, d_in: dIn, d_sae: dSae };
  const r = new SeededRandom(62);
  const gs2 = {
    w_enc: [[dIn, dSae], r.normals(dIn * dSae)],
    w_dec: [[dSae, dIn], r.normals(dSae * dIn)],
    b_enc: [[dSae], r.normals(dSae)],
    b_dec: [[dIn], r.normals(dIn)],
    threshold: [[dSae], r.normals(dSae)],
  } satisfies Record<string, [number[], Float32Array]>;
  const { threshold: __, ...noThreshold } = gs2;
  const residual = { architecture: "jump_relu", model_name: "google/gemma-3-1b-pt" };
  const hook = "model.layers.7.output";
  const gs2Config = { ...residual, hf_hook_point_in: hook, hf_hook_point_out: hook };
  const invalidJson = await writeSaeLens(base, gated);
  await Deno.writeTextFile(join(invalidJson, "cfg.json"), "{ not json");
  const noConfig = await writeGemmaScope2(gs2Config, gs2);
  await Deno.remove(join(noConfig, "config.json"));
  const cases: [string, () => Promise<unknown>, RegExp][] = [
    ["gated without r_mag", async () => loadSae(await writeSaeLens(base, noRMag)), /has no tensor "r_mag"/],
    [
      "topk without k",
      async () =>
        loadSae(await writeSaeLens({ ...base, architecture: "topk" }, randomSaeLensTensors("topk", 8, 16, 63))),
      /needs a positive integer k/,
    ],
    [
      "no d_sae",
      async () => {
        const dir = await writeSaeLens(base, gated);
        await Deno.writeTextFile(join(dir, "cfg.json"), JSON.stringify({ ...base, d_sae: undefined }));
        return loadSae(dir);
      },
      /positive integer d_sae/,
    ],
    [
      "an unknown architecture",
      async () => loadSae(await writeSaeLens({ ...base, architecture: "matching_pursuit" }, gated)),
      /architecture "matching_pursuit" is not supported/,
    ],
    ["cfg.json not JSON", () => loadSae(invalidJson), /cfg.json is not valid JSON/],
    ["Gemma Scope 2 without config.json", () => loadSae(noConfig), /looks like gemmascope2 but has no config.json/],
    [
      "Gemma Scope 2 of another architecture",
      async () => loadSae(await writeGemmaScope2({ ...gs2Config, architecture: "topk" }, gs2)),
      /Gemma Scope 2 architecture "topk" is not supported/,
    ],
    [
      "a Gemma Scope 2 transcoder",
      async () =>
        loadSae(
          await writeGemmaScope2({
            ...residual,
            hf_hook_point_in: "model.layers.7.pre_feedforward_layernorm.output",
            hf_hook_point_out: "model.layers.7.post_feedforward_layernorm.output",
          }, gs2),
        ),
      /is a transcoder/,
    ],
    [
      "a Gemma Scope 2 SAE of attention outputs",
      async () =>
        loadSae(
          await writeGemmaScope2({ ...residual, hf_hook_point_in: "model.layers.7.self_attn.o_proj.input" }, gs2),
        ),
      /not of the residual stream/,
    ],
    [
      "a Gemma Scope 2 w_dec of the wrong shape",
      async () => loadSae(await writeGemmaScope2(gs2Config, { ...gs2, w_dec: [[dIn, dSae], gs2.w_dec[1]] })),
      /w_dec has shape \[8,16\], expected \[16,8\]/,
    ],
    [
      "a Gemma Scope 2 file without threshold",
      async () => loadSae(await writeGemmaScope2(gs2Config, noThreshold)),
      /has no tensor "threshold"/,
    ],
  ];
  for (const [what, run, pattern] of cases) {
    try {
      await run();
      throw new Error(`${what}: expected a failure`);
    } catch (error) {
      assert(error instanceof UserError, `${what}: ${error}`);
      assert(pattern.test(error.message) && !error.message.includes("\n"), `${what}: ${error.message}`);
    }
  }
});

Deno.test("a Gemma Scope 2 SAE without hf_hook_point_out (as SAELens's test writes one) loads, its layer from hf_hook_point_in", async () => {
  const r = new SeededRandom(64);
  const dir = await writeGemmaScope2(
    { architecture: "jump_relu", model_name: "google/gemma-3-1b-pt", hf_hook_point_in: "model.layers.13.output" },
    {
      w_enc: [[8, 16], r.normals(128)],
      w_dec: [[16, 8], r.normals(128)],
      b_enc: [[16], r.normals(16)],
      b_dec: [[8], r.normals(8)],
      threshold: [[16], r.normals(16)],
    },
  );
  const sae = await loadSae(dir, { dModel: 8 });
  assertEquals(
    [sae.config.format, sae.config.hookLayer, sae.config.modelName, sae.config.applyBDecToInput],
    ["gemmascope2", 13, "google/gemma-3-1b-pt", false],
  );
});
