import { assert, assertClose } from "../assert.ts";
import { join } from "node:path";
import { UserError } from "../../lib/errors.ts";
import { ensureFixtureSae, fixtureReferenceSae } from "../../lib/fixtures/build.ts";
import { SeededRandom } from "../../lib/random.ts";
import { referenceEncode } from "../../lib/fixtures/sae_reference.ts";
import { FIXTURE_SAES } from "../../lib/fixtures/saes.ts";
import { acquireGpu } from "../../lib/gpu.ts";
import { encodeSafetensors } from "../../lib/io/safetensors.ts";
import { SaeEncoder } from "../../lib/kernels/sae_encode.ts";
import { loadSae } from "../../lib/sae/load.ts";
import { tempDir } from "../temp.ts";

/**
 * GPU (f32) against f64 encodings, per element: observed errors are at most 2.1e-6 absolute on values
 * up to 12 (f32 accumulation over d_in), inside the 1e-5 floor alone. A feature
 * whose pre-activation sat within rounding of its threshold would fail this by a whole threshold, so
 * it also checks that the active sets agree.
 */
const ENCODE_TOLERANCE = { rtol: 1e-5, atol: 1e-5 };

Deno.test("every fixture SAE format loads and encodes on the GPU like its reference", async () => {
  const gpu = await acquireGpu();
  for (const spec of FIXTURE_SAES) {
    const reference = await fixtureReferenceSae(spec.name);
    const sae = await loadSae(await ensureFixtureSae(spec.name), { dModel: reference.dIn });
    assert(sae.config.format === spec.format, spec.name);
    const x = new SeededRandom(4).normals(3 * reference.dIn, 3);
    const encoder = await SaeEncoder.create(gpu, sae);
    const f = await encoder.encode(x, 3);
    for (let r = 0; r < 3; r++) {
      const expected = referenceEncode(reference, x.subarray(r * reference.dIn, (r + 1) * reference.dIn));
      assertClose(f.subarray(r * reference.dSae, (r + 1) * reference.dSae), expected, {
        ...ENCODE_TOLERANCE,
        label: `${spec.name} row ${r}`,
      });
    }
    encoder.destroy();
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
  const encoder = await SaeEncoder.create(await acquireGpu(), sae);
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

/** SAELens's JumpReLU encode, from its definition: pre = (x − b_dec if apply_b_dec_to_input) W_enc + b_enc. */
function saeLensEncode(
  cfg: { apply_b_dec_to_input: boolean },
  t: { W_enc: Float32Array; b_enc: Float32Array; b_dec: Float32Array; threshold: Float32Array },
  x: ArrayLike<number>,
): Float64Array {
  const [dIn, dSae] = [t.b_dec.length, t.b_enc.length];
  const f = new Float64Array(dSae);
  for (let j = 0; j < dSae; j++) {
    let pre = t.b_enc[j];
    for (let i = 0; i < dIn; i++) pre += (x[i] - (cfg.apply_b_dec_to_input ? t.b_dec[i] : 0)) * t.W_enc[i * dSae + j];
    f[j] = pre > t.threshold[j] ? pre : 0;
  }
  return f;
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
    const files = { W_enc: saeLens.wEnc, b_enc: saeLens.bEnc, W_dec: saeLens.wDec, b_dec: saeLens.bDec };
    const saeLensTensors = { ...files, threshold: saeLens.threshold };
    const cfg = { architecture: "jumprelu", d_in: dIn, d_sae: dSae, apply_b_dec_to_input: apply };
    const saeLensDir = await tempDir("saelens-bdec-");
    await Deno.writeTextFile(join(saeLensDir, "cfg.json"), JSON.stringify(cfg));
    await Deno.writeFile(
      join(saeLensDir, "sae_weights.safetensors"),
      encodeSafetensors({
        W_enc: tensor([dIn, dSae], saeLens.wEnc),
        b_enc: tensor([dSae], saeLens.bEnc),
        W_dec: tensor([dSae, dIn], saeLens.wDec),
        b_dec: tensor([dIn], saeLens.bDec),
        threshold: tensor([dSae], saeLens.threshold),
      }),
    );

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
      const encoder = await SaeEncoder.create(gpu, sae);
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
