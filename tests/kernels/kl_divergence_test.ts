import { assertBytesEqual, assertClose, assertEquals } from "../assert.ts";
import { acquireGpu } from "../../lib/backend/gpu.ts";
import { GpuLogits, klDivergence } from "../../lib/kernels/kl_divergence.ts";
import { SeededRandom } from "../../lib/core/random.ts";
import { UserError } from "../../lib/core/errors.ts";
import { assert } from "../assert.ts";

/** KL(P ‖ Q), log Σ exp(a) and argmaxes in f64, from the definitions (textbook log-softmax). */
function referenceKl(a: ArrayLike<number>, b: ArrayLike<number>) {
  const lse = (x: ArrayLike<number>) => {
    let max = -Infinity;
    for (let i = 0; i < x.length; i++) max = Math.max(max, x[i]);
    let sum = 0;
    for (let i = 0; i < x.length; i++) sum += Math.exp(x[i] - max);
    return max + Math.log(sum);
  };
  const [la, lb] = [lse(a), lse(b)];
  let kl = 0;
  for (let i = 0; i < a.length; i++) kl += Math.exp(a[i] - la) * ((a[i] - la) - (b[i] - lb));
  const argmax = (x: ArrayLike<number>) => {
    let best = 0;
    for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
    return best;
  };
  return { kl, lse: la, argmaxA: argmax(a), argmaxB: argmax(b) };
}

/**
 * f32 KL against f64, per token. The f32 terms p·(log p − log q) carry ~1e-7 of the logits' scale
 * (here up to ~60) each, so the floor is 1e-5 nats; observed worst: see the test's log line.
 */
const KL_TOLERANCE = { rtol: 1e-4, atol: 1e-5 };

Deno.test("kl_divergence matches an f64 log-softmax KL per token at odd sizes; chunking and row runs change nothing", async () => {
  const gpu = await acquireGpu();
  const [rows, vocab] = [23, 1031];
  const r = new SeededRandom(17);
  const a = r.normals(rows * vocab, 3);
  const b = Float32Array.from(a, (x) => x + 0.3 * r.normal());
  // Row 1: every logit above 100 (a naive exp overflows f32) and one token far ahead; row 2: identical rows
  // (KL 0); row 3: a tie for the argmax (the lower index wins); row 4: large, unrelated logits.
  for (let v = 0; v < vocab; v++) {
    a[vocab + v] += 100 + 8 * Number(v === 700);
    b[vocab + v] += 100 + 5 * Number(v === 700);
    b[2 * vocab + v] = a[2 * vocab + v];
    a[3 * vocab + v] = b[3 * vocab + v] = v === 5 || v === 900 ? 20 : a[3 * vocab + v];
    a[4 * vocab + v] = 20 * r.normal();
  }
  // Rows 0-9 and 14-22 in two runs: a padded batch uploads only its real tokens.
  const runs = [{ start: 0, count: 10 }, { start: 14, count: 9 }];
  const picked = [...Array(10).keys(), ...Array.from({ length: 9 }, (_, i) => 14 + i)];
  const whole = await klDivergence(
    GpuLogits.upload(gpu, a, vocab, runs, "chat"),
    GpuLogits.upload(gpu, b, vocab, runs, "base"),
  );
  const small = 4 * vocab * 4; // four rows per chunk: 5 chunks, the last one short
  const p = GpuLogits.upload(gpu, a, vocab, runs, "chat", small);
  const q = GpuLogits.upload(gpu, b, vocab, runs, "base", small);
  assertEquals(p.chunks.map((c) => c.rows), [4, 4, 4, 4, 3]);
  const chunked = await klDivergence(p, q);
  p.destroy();
  q.destroy();
  assertBytesEqual(chunked.kl, whole.kl, "chunked == whole, bit for bit");
  const expected = picked.map((row) =>
    referenceKl(a.subarray(row * vocab, (row + 1) * vocab), b.subarray(row * vocab, (row + 1) * vocab))
  );
  assertClose(whole.kl, expected.map((e) => e.kl), { ...KL_TOLERANCE, label: "KL per token" });
  assertClose(whole.logSumExpP, expected.map((e) => e.lse), { rtol: 1e-6, atol: 1e-6, label: "logsumexp" });
  assertEquals([...whole.argmaxP], expected.map((e) => e.argmaxA));
  assertEquals([...whole.argmaxQ], expected.map((e) => e.argmaxB));
  assertEquals([whole.argmaxP[3], whole.argmaxQ[3], whole.argmaxP[1]], [5, 5, 700]);
  assert(Math.abs(whole.kl[2]) < 1e-6, `identical rows: KL ${whole.kl[2]}`);
  assert(expected[4].kl > 10 && expected[1].kl > 0.1 && expected[0].kl < 0.02, "the rows span small and large KL");
  const worst = Math.max(...expected.map((e, i) => Math.abs(whole.kl[i] - e.kl)));
  console.log(`KL worst |f32 - f64| ${worst.toExponential(2)} nats`);
});

Deno.test("kl_divergence refuses non-finite logits in one line naming the model and its row", async () => {
  const gpu = await acquireGpu();
  const clean = new SeededRandom(3).normals(5 * 40);
  const runs = [{ start: 0, count: 2 }, { start: 3, count: 2 }];
  for (const [bad, value, what, row] of [[3 * 40 + 7, NaN, "base", 3], [4 * 40, -Infinity, "chat", 4]] as const) {
    const broken = clean.slice();
    broken[bad] = value;
    const [p, q] = what === "chat" ? [broken, clean] : [clean, broken];
    try {
      await klDivergence(GpuLogits.upload(gpu, p, 40, runs, "chat"), GpuLogits.upload(gpu, q, 40, runs, "base"));
      throw new Error("expected a failure");
    } catch (error) {
      assert(
        error instanceof UserError &&
          new RegExp(`${what} model's logits contain NaN .*row ${row}\\)`).test(error.message),
        String(error),
      );
    }
  }
});

Deno.test("logits gathered from a GPU buffer equal the same rows uploaded from the host, bit for bit", async () => {
  const gpu = await acquireGpu();
  const [rows, vocab] = [9, 301];
  const r = new SeededRandom(8);
  const a = r.normals(rows * vocab, 2);
  const b = r.normals(rows * vocab, 2);
  const runs = [{ start: 1, count: 3 }, { start: 6, count: 2 }];
  const onGpu = (x: Float32Array) => {
    const buffer = gpu.device.createBuffer({
      size: x.byteLength,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    });
    gpu.device.queue.writeBuffer(buffer, 0, x.buffer as ArrayBuffer, x.byteOffset, x.byteLength);
    return buffer;
  };
  const small = 2 * vocab * 4; // chunks of two rows: pieces split across chunks
  const uploaded = await klDivergence(
    GpuLogits.upload(gpu, a, vocab, runs, "chat", small),
    GpuLogits.upload(gpu, b, vocab, runs, "base", small),
  );
  const gathered = await klDivergence(
    GpuLogits.gather(gpu, onGpu(a), vocab, runs, "chat", small),
    GpuLogits.gather(gpu, onGpu(b), vocab, runs, "base", small),
  );
  assertBytesEqual(gathered.kl, uploaded.kl, "KL");
  assertEquals([...gathered.argmaxP], [...uploaded.argmaxP]);
  const expected = [1, 2, 3, 6, 7].map((row) =>
    referenceKl(a.subarray(row * vocab, (row + 1) * vocab), b.subarray(row * vocab, (row + 1) * vocab)).kl
  );
  assertClose(gathered.kl, expected, { ...KL_TOLERANCE, label: "gathered KL vs f64" });
});
