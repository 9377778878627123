import { assert, assertEquals } from "../assert.ts";
import { wEncChunks } from "../../lib/kernels/sae_encode.ts";
import type { Sae } from "../../lib/sae/config.ts";

function sae(dIn: number, dSae: number): Sae {
  return {
    config: { format: "saelens", architecture: "relu", dIn, dSae, applyBDecToInput: false, source: "test" },
    wEnc: Float32Array.from({ length: dIn * dSae }, (_, i) => i + 1),
    bEnc: new Float32Array(dSae),
    wDec: new Float32Array(0),
    bDec: new Float32Array(dIn),
    threshold: new Float32Array(dSae),
  };
}

Deno.test("W_enc chunks: 64-column multiples under the limit, zero padding, and together exactly W_enc", () => {
  const s = sae(5, 300);
  const layout = { weightType: "f32" as const, limitBytes: 8 * 128 * 4, rows: 8, columnMultiple: 16 };
  const chunks = [...wEncChunks(s, layout)];
  assertEquals(chunks.map((c) => [c.offset, c.cols, c.padded]), [[0, 128, 128], [128, 128, 128], [256, 44, 48]]);
  for (const { offset, cols, padded, block } of chunks) {
    assert(block.byteLength <= layout.limitBytes);
    for (let i = 0; i < layout.rows; i++) {
      for (let c = 0; c < padded; c++) {
        const expected = i < 5 && c < cols ? s.wEnc[i * 300 + offset + c] : 0;
        assertEquals(block[i * padded + c], expected, `row ${i} column ${offset + c}`);
      }
    }
  }
  // f16 without column padding (as onnxruntime-web's chunks are): twice the columns fit.
  const half = [...wEncChunks(s, { ...layout, weightType: "f16", columnMultiple: 1 })];
  assertEquals(half.map((c) => [c.cols, c.block.constructor.name]), [[256, "Float16Array"], [44, "Float16Array"]]);
});
