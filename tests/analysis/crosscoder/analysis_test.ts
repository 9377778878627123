import { assertClose, assertEquals } from "../../assert.ts";
import {
  latentDecoderStats,
  latentTag,
  relativeNormDifference,
  tagCounts,
} from "../../../lib/analysis/crosscoder/analysis.ts";
import type { Crosscoder } from "../../../lib/analysis/crosscoder/config.ts";

/** A crosscoder with d = 2 whose decoder vectors are given per latent as [base, chat]. */
function withDecoders(decoders: [[number, number], [number, number]][]): Crosscoder {
  const dict = decoders.length;
  const wDec = new Float32Array(2 * dict * 2);
  decoders.forEach(([base, chat], j) => {
    wDec.set(base, j * 2);
    wDec.set(chat, (dict + j) * 2);
  });
  return {
    config: {
      layout: "dictionary_learning",
      architecture: "relu",
      dModel: 2,
      dict,
      codeNormalization: "crosscoder",
      alphaSae: 1,
      alphaCc: 0.1,
      source: "hand",
    },
    wEnc: new Float32Array(4 * dict),
    bEnc: new Float32Array(dict),
    wDec,
    bDec: new Float32Array(4),
  };
}

Deno.test("decoder norms, relative norm, Δnorm, cosine and tags of hand-checkable latents", () => {
  const cc = withDecoders([
    [[3, 4], [0, 0.25]], // ‖b‖ 5, ‖c‖ 0.25: Δ = (−4.75/5 + 1)/2 = 0.025 base_only; r = 0.25/5.25
    [[0, 0.25], [3, 4]], // mirror: Δ 0.975 chat_only
    [[1, 0], [0, 0.9]], // Δ = (−0.1 + 1)/2 = 0.45 shared; orthogonal: cos 0
    [[0.5, 0], [-1, 0]], // Δ = (0.5/1 + 1)/2 = 0.75 other; opposite: cos −1
    [[0, 0], [0, 0]], // dead: no ratio, other, cos 0
  ]);
  const s = latentDecoderStats(cc);
  assertClose(s.normBase, [5, 0.25, 1, 0.5, 0], { rtol: 1e-7, atol: 0 });
  assertClose(s.normChat, [0.25, 5, 0.9, 1, 0], { rtol: 1e-7, atol: 0 });
  assertClose(s.relativeNorm.slice(0, 4), [0.25 / 5.25, 5 / 5.25, 0.9 / 1.9, 1 / 1.5], { rtol: 1e-7, atol: 0 });
  assertClose(s.normDiff.slice(0, 4), [0.025, 0.975, 0.45, 0.75], { rtol: 1e-7, atol: 0 });
  assertEquals(Number.isNaN(s.relativeNorm[4]) && Number.isNaN(s.normDiff[4]), true);
  assertClose(s.cosine, [0.8, 0.8, 0, -1, 0], { rtol: 1e-7, atol: 1e-12 });
  assertEquals(s.tags, ["base_only", "chat_only", "shared", "other", "other"]);
  assertEquals(tagCounts(s.tags), { chat_only: 1, base_only: 1, shared: 1, other: 2 });
});

Deno.test("tag thresholds are strict, as diffing-toolkit's (0.1): the edges of chat/base-only are not tagged", () => {
  // Exact in binary: Δ = (c − b)/max/2 + 1/2 with b = 1, c = 5 → (0.8 + 1)/2 = 0.9 exactly.
  assertEquals(relativeNormDifference(1, 5), 0.9);
  assertEquals(latentTag(0.9), "other");
  assertEquals(latentTag(0.9000001), "chat_only");
  assertEquals(latentTag(0.1), "other");
  assertEquals(latentTag(0.0999999), "base_only");
  // |Δ − 0.5| < 0.1 as floating point computes it (f64 here, f32 in torch alike): |0.4 − 0.5| is
  // 0.09999999999999998, so the shared band's edges 0.4 and 0.6 are in it; just beyond them is not.
  assertEquals(latentTag(0.4), "shared");
  assertEquals(latentTag(0.6), "shared");
  assertEquals(latentTag(0.3999999), "other");
  assertEquals(latentTag(0.6000001), "other");
  assertEquals(latentTag(1), "chat_only");
  assertEquals(latentTag(0), "base_only");
  assertEquals(latentTag(NaN), "other");
});
