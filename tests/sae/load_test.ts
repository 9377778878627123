import { assert } from "../assert.ts";
import { UserError } from "../../lib/errors.ts";
import { ensureFixtureSae, fixtureReferenceSae } from "../../lib/fixtures/build.ts";
import { SeededRandom } from "../../lib/fixtures/random.ts";
import { referenceEncode } from "../../lib/fixtures/sae_reference.ts";
import { FIXTURE_SAES } from "../../lib/fixtures/saes.ts";
import { acquireGpu } from "../../lib/gpu.ts";
import { SaeEncoder } from "../../lib/kernels/sae_encode.ts";
import { loadSae } from "../../lib/sae/load.ts";
import { worstRelativeError } from "../helpers.ts";
import { tempDir } from "../temp.ts";

Deno.test("every fixture SAE format loads and encodes on the GPU like its reference", async () => {
  const gpu = await acquireGpu();
  for (const spec of FIXTURE_SAES) {
    const reference = await fixtureReferenceSae(spec.name);
    const sae = await loadSae(await ensureFixtureSae(spec.name), { dModel: reference.dIn });
    assert(sae.config.format === spec.format, spec.name);
    const x = new SeededRandom(4).normals(3 * reference.dIn, 3);
    const encoder = await SaeEncoder.create(gpu, sae);
    const f = await encoder.encode(x, 3);
    const pairs: [Float32Array, Float64Array][] = [0, 1, 2].map((r) => [
      f.subarray(r * reference.dSae, (r + 1) * reference.dSae),
      referenceEncode(reference, x.subarray(r * reference.dIn, (r + 1) * reference.dIn)),
    ]);
    const error = worstRelativeError(pairs);
    assert(error < 1e-4, `${spec.name}: relative error ${error}`);
    // Same active set as the reference (no feature sits within rounding of its threshold here).
    for (const [ours, theirs] of pairs) {
      for (let j = 0; j < ours.length; j++) assert((ours[j] > 0) === (theirs[j] > 0), `${spec.name} feature ${j}`);
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
