import { assert, assertClose, assertEquals } from "../../assert.ts";
import { TOKEN_TYPES } from "../../../lib/runtime/chat.ts";
import { CrosscoderEncoder } from "../../../lib/analysis/crosscoder/encode.ts";
import { loadCrosscoder } from "../../../lib/analysis/crosscoder/load.ts";
import {
  ensureFixtureCrosscoder,
  fixtureCrosscoderPairs,
  fixtureReferenceCrosscoder,
} from "../../../lib/fixtures/build.ts";
import { referenceCrosscoderEncode } from "../../../lib/fixtures/crosscoder_reference.ts";
import { FIXTURE_CROSSCODERS } from "../../../lib/fixtures/crosscoders.ts";
import { acquireGpu } from "../../../lib/backend/gpu.ts";
import { FeatureStats } from "../../../lib/features/stats.ts";
import { referenceStats } from "../../reference_stats.ts";

/** f32 GPU sums of 128 products against f64: ~1e-6 of the terms' scale. */
const ENCODE_TOLERANCE = { rtol: 1e-4, atol: 1e-5 };

/**
 * The pairs the fixtures were calibrated on (both models' f64 reference residuals after layer 2 at
 * the assistant header, the same ids), as f32 rows [prompt × token type]: what the encoder is given.
 */
async function referencePairs(name: string) {
  const groups = await fixtureCrosscoderPairs(name);
  const rows = groups[0].length * groups.length;
  const pick = (m: number) =>
    Float32Array.from(groups[0].flatMap((_, n) => groups.flatMap((group) => [...group[n][m]])));
  return { base: pick(0), chat: pick(1), rows };
}

for (const spec of FIXTURE_CROSSCODERS) {
  Deno.test(`${spec.name} (${spec.layout}, ${spec.activation}): GPU encodings of paired residuals match the layout's f64 encode; statistics too`, async () => {
    const cc = await loadCrosscoder(await ensureFixtureCrosscoder(spec.name));
    const reference = await fixtureReferenceCrosscoder(spec.name);
    const { base, chat, rows } = await referencePairs(spec.name);
    const d = reference.dModel;
    const encoder = await CrosscoderEncoder.create(await acquireGpu(), cc);
    try {
      const got = await encoder.encode(base, chat, rows);
      const expected = new Float64Array(rows * reference.dict);
      let firing = 0;
      for (let r = 0; r < rows; r++) {
        const [b, c] = [base.subarray(r * d, (r + 1) * d), chat.subarray(r * d, (r + 1) * d)];
        const f = referenceCrosscoderEncode(reference, b, c);
        expected.set(f, r * reference.dict);
        firing += f.filter((v) => v > 0).length;
      }
      assertClose(got, expected, { ...ENCODE_TOLERANCE, label: `${spec.name} latents` });
      // Some latents fire and some do not, on every row: the comparison says something.
      assert(firing > rows && firing < rows * reference.dict, `${firing} of ${rows * reference.dict} fire`);
      for (let r = 0; r < rows; r++) assertEquals(got[r * reference.dict + 1], 0, "latent 1 never fires");
      for (let r = 0; r < rows; r++) assert(got[r * reference.dict] > 0, "latent 0 always fires");

      // The statistics path (GPU partials) against the textbook statistics of the f64 encodings.
      const stats = FeatureStats.empty(TOKEN_TYPES, reference.dict);
      const rowType = Uint32Array.from({ length: rows }, (_, r) => r % TOKEN_TYPES.length);
      await encoder.encodeInto(base, chat, rows, rowType, stats);
      const metrics = stats.finalize();
      TOKEN_TYPES.forEach((type, t) => {
        const perRow = Array.from(
          { length: rows / TOKEN_TYPES.length },
          (_, n) =>
            expected.subarray(
              (n * TOKEN_TYPES.length + t) * reference.dict,
              (n * TOKEN_TYPES.length + t + 1) * reference.dict,
            ),
        );
        const want = referenceStats(perRow.map((a) => Float64Array.from(a)));
        for (const metric of ["all_mean", "max", "sparsity", "active_mean"] as const) {
          assertClose(metrics[type][metric], want[metric], { ...ENCODE_TOLERANCE, label: `${type} ${metric}` });
        }
      });
    } finally {
      encoder.destroy();
    }
  });
}
