import { assert, assertBytesEqual, assertClose, assertEquals } from "../assert.ts";
import { UserError } from "../../lib/core/errors.ts";
import { SeededRandom } from "../../lib/core/random.ts";
import { referenceEncode } from "../../lib/fixtures/sae_reference.ts";
import { acquireGpu } from "../../lib/backend/gpu.ts";
import { cosineMatrix } from "../../lib/kernels/cosine_matrix.ts";
import { GpuSaeEncoder, isExactF16 } from "../../lib/kernels/sae_encode.ts";
import { asReference, checkEncoderStatistics, exactGatedSae, randomSae } from "../random_sae.ts";
import { FeatureStats } from "../../lib/features/stats.ts";

/**
 * f32 encodes against f64, per element. Observed: under 3.1e-5 absolute, on the always-on feature's
 * values near 1e3 (3e-8 of them); the needed relative part beyond the floor is 2e-8.
 */
const ENCODE_TOLERANCE = { rtol: 1e-5, atol: 1e-5 };

Deno.test("sae_encode matches the f64 reference for ReLU, JumpReLU, TopK and gated at odd sizes; chunking changes nothing", async () => {
  const gpu = await acquireGpu();
  const rows = 37;
  for (const architecture of ["relu", "jumprelu", "topk", "gated"] as const) {
    const sae = randomSae(67, 203, architecture, 11, architecture === "relu" || architecture === "gated");
    const x = new SeededRandom(5).normals(rows * 67);
    const whole = await GpuSaeEncoder.create(gpu, sae);
    const chunked = await GpuSaeEncoder.create(gpu, sae, { maxChunkBytes: 67 * 4 * 64 });
    assertEquals([whole.chunkCount, chunked.chunkCount], [1, 4]);
    const a = await whole.encode(x, rows);
    const b = await chunked.encode(x, rows);
    assertBytesEqual(b, a, "chunked == unchunked, bit for bit");
    for (let r = 0; r < rows; r++) {
      const expected = referenceEncode(asReference(sae), x.subarray(r * 67, (r + 1) * 67));
      assertClose(a.subarray(r * 203, (r + 1) * 203), expected, {
        ...ENCODE_TOLERANCE,
        label: `${architecture} row ${r}`,
      });
    }
    for (let r = 0; r < rows; r++) assert(a[r * 203] > 0 && a[r * 203 + 1] === 0, "always-on / never-on features");
    whole.destroy();
    chunked.destroy();
  }
});

Deno.test("sae_encode row tiles of 1, 4 and 13 rows, and a single row, match the f64 reference", async () => {
  const gpu = await acquireGpu();
  const sae = randomSae(45, 70, "jumprelu", 4);
  const x = new SeededRandom(8).normals(37 * 45);
  // 37 rows in tiles of at most 4 rows: ten tiles, the last holding one row; at most 16: three of 13.
  for (const [rows, maxTileRows] of [[37, 4], [37, 16], [1, 16]]) {
    const encoder = await GpuSaeEncoder.create(gpu, sae, { maxTileRows });
    const f = await encoder.encode(x.subarray(0, rows * 45), rows);
    for (let r = 0; r < rows; r++) {
      const expected = referenceEncode(asReference(sae), x.subarray(r * 45, (r + 1) * 45));
      assertClose(f.subarray(r * 70, (r + 1) * 70), expected, {
        ...ENCODE_TOLERANCE,
        label: `${rows} rows, tiles of at most ${maxTileRows}: row ${r}`,
      });
    }
    encoder.destroy();
  }
});

Deno.test("f16 weights stay f16 on the GPU and encode within 1e-3 of f64 on the same weights; f32 storage of them gives the same bits", async () => {
  const gpu = await acquireGpu();
  const [dIn, dSae, rows] = [67, 203, 9];
  const sae = randomSae(dIn, dSae, "relu", 12, true);
  sae.wEnc = sae.wEnc.map(Math.f16round);
  const x = new SeededRandom(13).normals(rows * dIn);
  const half = await GpuSaeEncoder.create(gpu, sae, { maxChunkBytes: 96 * 2 * 128 }); // 128 columns of f16 per chunk: 2 chunks (f32 would need 4)
  const single = await GpuSaeEncoder.create(gpu, sae, { weights: "f32" });
  assertEquals([half.weightType, single.weightType, half.chunkCount], ["f16", "f32", 2]);
  const f = await half.encode(x, rows);
  for (let r = 0; r < rows; r++) {
    const expected = referenceEncode(asReference(sae), x.subarray(r * dIn, (r + 1) * dIn));
    assertClose(f.subarray(r * dSae, (r + 1) * dSae), expected, { rtol: 1e-3, atol: 1e-6, label: `row ${r}` });
  }
  // Same f32 arithmetic in the same order: only the storage differs.
  assertBytesEqual(f, await single.encode(x, rows), "f16 storage vs f32 storage of the same weights");
  half.destroy();
  single.destroy();
  // A weight f16 cannot hold (an f16 subnormal's lost bits; BF16 files can have them) keeps W in f32.
  assert(isExactF16(Float32Array.of(0.5, -3, 65504, 2 ** -24)) && !isExactF16(Float32Array.of(0.5, 2 ** -24 * 1.5)));
});

Deno.test("JumpReLU is off at a pre-activation exactly on its threshold (gated: its gate at exactly 0); TopK ties keep the lower feature id", async () => {
  const gpu = await acquireGpu();
  // Small integers and quarters: every pre-activation is exact in f32 whatever the summation order, so
  // a pre-activation can be put exactly on its threshold.
  const [dIn, dSae, rows] = [4, 6, 2];
  const r = new SeededRandom(21);
  const wEnc = Float32Array.from({ length: dIn * dSae }, () => Math.round(6 * r.uniform()) - 3);
  const x = Float32Array.from({ length: rows * dIn }, () => Math.round(8 * r.uniform()) / 4);
  const bEnc = Float32Array.from({ length: dSae }, (_, j) => 20 + j);
  const pre = (row: number, j: number) => {
    let sum = bEnc[j];
    for (let i = 0; i < dIn; i++) sum += x[row * dIn + i] * wEnc[i * dSae + j];
    return sum;
  };
  // Row 0: even features sit exactly on their threshold (off), odd ones a quarter above it (on).
  const threshold = Float32Array.from({ length: dSae }, (_, j) => pre(0, j) - (j % 2 ? 0.25 : 0));
  const base = { format: "saelens", dIn, dSae, applyBDecToInput: false, source: "exact" } as const;
  const zeros = (n: number) => new Float32Array(n);
  const jump = await GpuSaeEncoder.create(gpu, {
    config: { ...base, architecture: "jumprelu" },
    wEnc,
    bEnc,
    wDec: zeros(dSae * dIn),
    bDec: zeros(dIn),
    threshold,
  });
  const f = await jump.encode(x, rows);
  const expected = Array.from({ length: dSae }, (_, j) => (j % 2 ? pre(0, j) : 0));
  assertEquals([...f.subarray(0, dSae)], expected, "row 0: on the threshold is off");
  jump.destroy();
  // TopK with k = 2 over pre-activations 1, 3, 3, 2, 3, 0.5: of the three tied 3s, features 1 and 2 stay.
  const topk = await GpuSaeEncoder.create(gpu, {
    config: { ...base, architecture: "topk", k: 2 },
    wEnc: zeros(dIn * dSae),
    bEnc: Float32Array.from([1, 3, 3, 2, 3, 0.5]),
    wDec: zeros(dSae * dIn),
    bDec: zeros(dIn),
    threshold: zeros(dSae),
  });
  assertEquals([...await topk.encode(x.subarray(0, dIn), 1)], [0, 3, 3, 0, 0, 0]);
  topk.destroy();
  // Gated: shut at a gate pre-activation of exactly 0, open above it with the ReLU'd magnitude.
  const exact = exactGatedSae();
  const gated = await GpuSaeEncoder.create(gpu, exact.sae);
  assertEquals([...await gated.encode(exact.x, 1)], exact.expected, "gated: exactly 0 is shut");
  gated.destroy();
});

Deno.test("NaN or infinite inputs are rejected with a clear error naming the row, by encode and encodeInto", async () => {
  const gpu = await acquireGpu();
  // b_dec applied: the check must see the input before the subtraction, and -inf as well as NaN.
  const encoder = await GpuSaeEncoder.create(gpu, randomSae(8, 16, "relu", 1, true));
  const expectRow = async (run: () => Promise<unknown>, row: number) => {
    try {
      await run();
      throw new Error("expected a failure");
    } catch (error) {
      assert(error instanceof UserError && new RegExp(`row ${row} contains NaN`).test(error.message), String(error));
    }
  };
  const x = new Float32Array(16);
  x[11] = NaN;
  await expectRow(() => encoder.encode(x, 2), 1);
  const rows = new Float32Array(6 * 8);
  rows[4 * 8 + 7] = -Infinity;
  rows[5 * 8] = Infinity;
  await expectRow(() => encoder.encodeInto(rows, 6, new Uint32Array(6), FeatureStats.empty(["a"], 16)), 4);
  // A clean batch afterwards is encoded normally: the flag was reset.
  const stats = FeatureStats.empty(["a"], 16);
  await encoder.encodeInto(new Float32Array(6 * 8), 6, new Uint32Array(6), stats);
  assertEquals(stats.count[0], 6);
  encoder.destroy();
});

Deno.test("feature_stats and top_rows match textbook statistics and a plain sort of the f64 encoding; shards merge into exactly the one-shot result", async () => {
  const gpu = await acquireGpu();
  await checkEncoderStatistics((sae) => GpuSaeEncoder.create(gpu, sae, { maxChunkBytes: sae.config.dIn * 4 * 64 }));
});

Deno.test("cosine_matrix and its reductions match f64", async () => {
  const gpu = await acquireGpu();
  const [n, m, d] = [6, 5, 45];
  const r = new SeededRandom(2);
  const a = r.normals(n * d);
  const b = r.normals(m * d);
  const result = await cosineMatrix(gpu, a, n, b, m, d);
  const cos = (x: Float32Array, i: number, y: Float32Array, j: number) => {
    let dot = 0, nx = 0, ny = 0;
    for (let k = 0; k < d; k++) {
      dot += x[i * d + k] * y[j * d + k];
      nx += x[i * d + k] ** 2;
      ny += y[j * d + k] ** 2;
    }
    return dot / Math.sqrt(nx * ny);
  };
  let cross = 0, upperA = 0, upperB = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < m; j++) {
      assert(Math.abs(result.matrix[i * m + j] - cos(a, i, b, j)) < 1e-5);
      cross += cos(a, i, b, j) / (n * m);
    }
  }
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) upperA += cos(a, i, a, j) / (n * (n - 1) / 2);
  for (let i = 0; i < m; i++) for (let j = i + 1; j < m; j++) upperB += cos(b, i, b, j) / (m * (m - 1) / 2);
  assert(
    Math.abs(result.meanCross - cross) < 1e-6 && Math.abs(result.meanUpperA - upperA) < 1e-6 &&
      Math.abs(result.meanUpperB - upperB) < 1e-6,
  );
});
