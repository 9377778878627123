import assertModule from "node:assert/strict";
import { assertBytesEqual, assertClose } from "./assert.ts";

function failureOf(run: () => void): string {
  try {
    run();
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error("expected a failure");
}

Deno.test("assertBytesEqual names the first differing byte and the sizes, and is quick on large arrays", () => {
  const a = new Uint8Array(1 << 24);
  const b = a.slice();
  assertBytesEqual(a, b);
  b[70_001] = 0xab;
  assertModule.match(
    failureOf(() => assertBytesEqual(a, b, "stats")),
    /stats: 16777216 bytes vs 16777216 expected, first difference at byte 70001 \(actual 0x00, expected 0xab\)/,
  );
  assertModule.match(
    failureOf(() => assertBytesEqual(a.subarray(0, 10), a)),
    /10 bytes vs 16777216 expected, identical up to byte 10/,
  );
  // Views compare their own bytes, not their whole buffers.
  assertBytesEqual(new Float32Array([1, 2]).subarray(1), new Float32Array([2]));
});

Deno.test("assertClose is per element: a small element off by much fails even when large ones dominate", () => {
  assertClose([1000, 1e-3], [1000.0005, 1e-3], { rtol: 1e-6, atol: 1e-9 });
  const message = failureOf(() => assertClose([1000, 2e-3], [1000, 1e-3], { rtol: 1e-4, atol: 1e-6, label: "means" }));
  assertModule.match(message, /means: element 1 is 0\.002, expected 0\.001/);
  assertModule.match(failureOf(() => assertClose([NaN], [0], { rtol: 1, atol: 1 })), /element 0 is NaN/);
  assertModule.match(failureOf(() => assertClose([1], [1, 2], { rtol: 1, atol: 1 })), /1 elements, expected 2/);
  assertClose([Infinity, -Infinity], [Infinity, -Infinity], { rtol: 0, atol: 0 });
});
