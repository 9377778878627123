import { assertBytesEqual } from "../assert.ts";
import { SeededRandom } from "../../lib/core/random.ts";
import { acquireGpu } from "../../lib/backend/gpu.ts";
import { topK } from "../../lib/kernels/top_k.ts";

/** The definition: sort a row's indices by value (descending), ties by lower index; keep k, ReLU'd. */
function hostTopK(values: Float32Array, rows: number, cols: number, k: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const row = values.subarray(r * cols, (r + 1) * cols);
    const order = Array.from(row.keys()).sort((a, b) => row[b] - row[a] || a - b);
    for (const j of order.slice(0, k)) out[r * cols + j] = Math.max(0, row[j]);
  }
  return out;
}

Deno.test("top_k equals a host sort with ties by lower index: duplicates, all-equal rows, negatives, k = 0, 1, cols and beyond", async () => {
  const gpu = await acquireGpu();
  const random = new SeededRandom(7);
  // 1000 columns: not a multiple of the 256 threads, so the last thread's segment is short.
  const [rows, cols] = [6, 1000];
  const values = new Float32Array(rows * cols);
  for (let j = 0; j < cols; j++) {
    values[j] = Math.round(8 * random.uniform()) - 4; // row 0: few distinct values, many ties, some negative
    values[cols + j] = 2.5; // row 1: all equal
    values[2 * cols + j] = random.normals(1)[0]; // row 2: distinct
    values[3 * cols + j] = -1 - (j % 3); // row 3: all negative
    values[4 * cols + j] = j % 2 ? 0 : -0; // row 4: +0 and -0 only, which compare equal
    values[5 * cols + j] = j % 97 === 0 ? 1e30 : -1e-30; // row 5: a few huge values among tiny negatives
  }
  for (const k of [0, 1, 7, 64, 999, 1000, 1005]) {
    const expected = hostTopK(values, rows, cols, k);
    assertBytesEqual(await topK(gpu, values, rows, cols, k), expected, `k = ${k}`);
  }
});
