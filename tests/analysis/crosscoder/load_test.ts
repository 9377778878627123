import { assert, assertClose, assertEquals, assertMatch } from "../../assert.ts";
import { join } from "node:path";
import { loadCrosscoder } from "../../../lib/analysis/crosscoder/load.ts";
import { UserError } from "../../../lib/core/errors.ts";
import { encodeSafetensors } from "../../../lib/io/safetensors.ts";
import { ensureFixtureCrosscoder, fixtureReferenceCrosscoder } from "../../../lib/fixtures/build.ts";
import { FIXTURE_CROSSCODERS } from "../../../lib/fixtures/crosscoders.ts";
import { SeededRandom } from "../../../lib/core/random.ts";
import { tempDir } from "../../temp.ts";

async function userError(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(() => undefined, (e) => e);
  assert(error instanceof UserError, `expected a UserError, got ${error}`);
  assert(!error.message.includes("\n"), "one line");
  return error.message;
}

Deno.test("both fixture layouts load into the math they were written from (orientation, threshold, k, layer)", async () => {
  for (const spec of FIXTURE_CROSSCODERS) {
    const cc = await loadCrosscoder(await ensureFixtureCrosscoder(spec.name));
    const ref = await fixtureReferenceCrosscoder(spec.name);
    const exact = { rtol: 0, atol: 0 };
    assertClose(cc.wEnc, ref.wEnc, { ...exact, label: "W_enc" });
    assertClose(cc.bEnc, ref.bEnc, { ...exact, label: "b_enc" });
    assertClose(cc.wDec, ref.wDec, { ...exact, label: "W_dec" });
    assertClose(cc.bDec, ref.bDec, { ...exact, label: "b_dec" });
    assertEquals(cc.config.architecture, spec.activation);
    assertEquals(cc.config.hookLayer, spec.layer);
    assertEquals([cc.config.dModel, cc.config.dict], [ref.dModel, ref.dict]);
    if (spec.activation === "batchtopk") assertEquals([cc.config.threshold, cc.config.k], [ref.threshold, ref.k]);
  }
});

Deno.test("a dictionary_learning input normalizer (x − mean_m)·s_m is folded into the encoder exactly", async () => {
  const [d, dict] = [3, 4];
  const random = new SeededRandom(7);
  const w = random.normals(2 * d * dict);
  const mean = random.normals(2 * d);
  const scale = new Float32Array([0.5, 2]);
  const bias = random.normals(dict);
  const dir = await tempDir();
  await Deno.writeTextFile(
    join(dir, "config.json"),
    JSON.stringify({ activation_dim: d, dict_size: dict, num_layers: 2 }),
  );
  await Deno.writeFile(
    join(dir, "model.safetensors"),
    encodeSafetensors({
      activation_mean: { dtype: "F32", shape: [2, d], data: mean },
      activation_std: { dtype: "F32", shape: [2, d], data: new Float32Array(2 * d).fill(1) },
      activation_global_scale: { dtype: "F32", shape: [2], data: scale },
      "encoder.weight": { dtype: "F32", shape: [2, d, dict], data: w },
      "encoder.bias": { dtype: "F32", shape: [dict], data: bias },
      "decoder.weight": { dtype: "F32", shape: [2, dict, d], data: new Float32Array(2 * dict * d) },
      "decoder.bias": { dtype: "F32", shape: [2, d], data: new Float32Array(2 * d) },
    }),
  );
  const cc = await loadCrosscoder(dir);
  const x = random.normals(2 * d);
  // dictionary_learning: pre = Σ_m ((x_m − mean_m) · s_m) W[m] + b, written out in f64.
  const expected = Float64Array.from(bias);
  const got = Float64Array.from(cc.bEnc);
  for (let m = 0; m < 2; m++) {
    for (let i = 0; i < d; i++) {
      for (let j = 0; j < dict; j++) {
        expected[j] += (x[m * d + i] - mean[m * d + i]) * scale[m] * w[(m * d + i) * dict + j];
        got[j] += x[m * d + i] * cc.wEnc[(m * d + i) * dict + j];
      }
    }
  }
  assertClose(got, expected, { rtol: 1e-5, atol: 1e-6 });
});

Deno.test("a bad file, another width, another layer, a 3-model crosscoder and --input-scale on dictionary_learning are one line each", async () => {
  const fixture = await ensureFixtureCrosscoder("tiny-llama-crosscoder-L2-k4");
  const tl = await ensureFixtureCrosscoder("tiny-llama-crosscoder-tl");
  assertMatch(await userError(loadCrosscoder(fixture, { dModel: 96 })), /expects d_model 64 but the models have 96/);
  assertMatch(await userError(loadCrosscoder(fixture, { layer: 1 })), /trained on the output of layer 2, not 1/);
  assertMatch(await userError(loadCrosscoder(tl, { layer: 3 })), /trained on the output of layer 2, not 3/);
  assertMatch(await userError(loadCrosscoder(fixture, { inputScale: [1, 1] })), /carries its own input normalizer/);
  const dir = await tempDir();
  await Deno.copyFile(join(fixture, "config.json"), join(dir, "config.json"));
  await Deno.writeTextFile(join(dir, "model.safetensors"), "not a safetensors file at all");
  assertMatch(await userError(loadCrosscoder(dir)), /is not a valid safetensors file/);
  await Deno.writeFile(
    join(dir, "model.safetensors"),
    encodeSafetensors({ "encoder.weight": { dtype: "F32", shape: [3, 2, 2], data: new Float32Array(12) } }),
  );
  assertMatch(await userError(loadCrosscoder(dir)), /only base-vs-chat crosscoders/);
  assertMatch(await userError(loadCrosscoder(join(dir, "nothing"))), /crosscoder directory not found/);
  const empty = await tempDir();
  assertMatch(await userError(loadCrosscoder(empty)), /is not a crosscoder directory/);
});
