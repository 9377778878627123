import { assert, assertClose, assertEquals } from "../assert.ts";
import { referenceEncode } from "../../lib/fixtures/sae_reference.ts";
import { SeededRandom } from "../../lib/core/random.ts";
import { CpuSaeEncoder, keepTopKRelu } from "../../lib/encoders/cpu.ts";
import { asReference, checkEncoderStatistics, exactGatedSae, randomSae } from "../random_sae.ts";

/**
 * f32 (MLAS) encodes against f64, per element, the bound the GPU encoder is held to. A feature whose
 * pre-activation sat within rounding of its threshold (or of the k-th value) would miss it by a whole
 * activation, so this also checks the active sets agree.
 */
const ENCODE_TOLERANCE = { rtol: 1e-5, atol: 1e-5 };

Deno.test("CPU encode equals the f64 reference for ReLU, JumpReLU, TopK and gated, with and without b_dec on the input", async () => {
  const [rows, dIn, dSae] = [37, 67, 203];
  for (const architecture of ["relu", "jumprelu", "topk", "gated"] as const) {
    for (const applyBDec of [false, true]) {
      const sae = randomSae(dIn, dSae, architecture, 11, applyBDec);
      const x = new SeededRandom(5).normals(rows * dIn);
      const encoder = await CpuSaeEncoder.create(sae);
      const f = await encoder.encode(x, rows);
      for (let r = 0; r < rows; r++) {
        const expected = referenceEncode(asReference(sae), x.subarray(r * dIn, (r + 1) * dIn));
        assertClose(f.subarray(r * dSae, (r + 1) * dSae), expected, {
          ...ENCODE_TOLERANCE,
          label: `${architecture}${applyBDec ? " apply_b_dec" : ""} row ${r}`,
        });
        assert(f[r * dSae] > 0 && f[r * dSae + 1] === 0, "always-on / never-on features");
      }
      if (architecture === "topk") {
        for (let r = 0; r < rows; r++) {
          const active = f.subarray(r * dSae, (r + 1) * dSae).filter((v) => v > 0).length;
          assert(active <= 7, `row ${r}: ${active} active features with k = 7`);
        }
      }
      encoder.destroy();
    }
  }
});

Deno.test("CPU JumpReLU is off at a pre-activation exactly on its threshold", async () => {
  // Small integers and quarters: every pre-activation is exact in f32 whatever the summation order.
  const [dIn, dSae] = [4, 6];
  const r = new SeededRandom(21);
  const wEnc = Float32Array.from({ length: dIn * dSae }, () => Math.round(6 * r.uniform()) - 3);
  const x = Float32Array.from({ length: dIn }, () => Math.round(8 * r.uniform()) / 4);
  const bEnc = Float32Array.from({ length: dSae }, (_, j) => 20 + j);
  const pre = (j: number) => {
    let sum = bEnc[j];
    for (let i = 0; i < dIn; i++) sum += x[i] * wEnc[i * dSae + j];
    return sum;
  };
  // Even features sit exactly on their threshold (off), odd ones a quarter above it (on).
  const threshold = Float32Array.from({ length: dSae }, (_, j) => pre(j) - (j % 2 ? 0.25 : 0));
  const encoder = await CpuSaeEncoder.create({
    config: { format: "saelens", architecture: "jumprelu", dIn, dSae, applyBDecToInput: false, source: "exact" },
    wEnc,
    bEnc,
    wDec: new Float32Array(dSae * dIn),
    bDec: new Float32Array(dIn),
    threshold,
  });
  assertEquals([...await encoder.encode(x, 1)], Array.from({ length: dSae }, (_, j) => (j % 2 ? pre(j) : 0)));
  encoder.destroy();
});

Deno.test("CPU gated: the gate is shut at a gate pre-activation of exactly 0; an open gate passes the ReLU'd magnitude", async () => {
  const { sae, x, expected } = exactGatedSae();
  const encoder = await CpuSaeEncoder.create(sae);
  assertEquals([...await encoder.encode(x, 1)], expected);
  assert(expected.filter((v) => v > 0).length === 2, "two open features with a positive magnitude");
  encoder.destroy();
});

Deno.test("top-k keeps the k largest, ties to the lower feature id, then ReLU; k beyond the width keeps all", () => {
  const row = () => Float32Array.from([1, 3, 3, 2, 3, 0.5, -1, 3]);
  const cases: [number, number[]][] = [
    [2, [0, 3, 3, 0, 0, 0, 0, 0]],
    [4, [0, 3, 3, 0, 3, 0, 0, 3]],
    [5, [0, 3, 3, 2, 3, 0, 0, 3]],
    [0, [0, 0, 0, 0, 0, 0, 0, 0]],
    [8, [1, 3, 3, 2, 3, 0.5, 0, 3]],
    [20, [1, 3, 3, 2, 3, 0.5, 0, 3]],
  ];
  for (const [k, expected] of cases) {
    const r = row();
    keepTopKRelu(r, k);
    assertEquals([...r], expected, `k = ${k}`);
  }
  // A larger value arriving later evicts the higher id of the tied smallest kept ones.
  const evict = Float32Array.from([3, 3, 5, 3]);
  keepTopKRelu(evict, 2);
  assertEquals([...evict], [3, 0, 5, 0]);
  // Negative values among the k largest are kept as 0 (ReLU after selection), as the reference does.
  const negative = Float32Array.from([-3, -1, -2]);
  keepTopKRelu(negative, 2);
  assertEquals([...negative], [0, 0, 0]);
});

Deno.test("CPU statistics and top examples match textbook statistics and a plain sort of the f64 encoding; shards merge into exactly the one-shot result", async () => {
  await checkEncoderStatistics((sae) => CpuSaeEncoder.create(sae));
});
