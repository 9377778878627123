import { assertEquals } from "../assert.ts";
import type { LatentTag } from "../../lib/analysis/crosscoder/analysis.ts";
import { relativeNormHistogram } from "../../lib/report/crosscoder.ts";

Deno.test("relative-norm histogram: bins of [0, 1] per tag, 1 in the last bin, edges to the bin above, NaN left out", () => {
  const r = [0, 0.2, 0.25, 0.5, 0.74, 1, NaN, 0.99];
  const tags: LatentTag[] = ["base_only", "other", "other", "shared", "other", "chat_only", "other", "chat_only"];
  // Four bins of width 0.25: [0, .25), [.25, .5), [.5, .75), [.75, 1].
  assertEquals(relativeNormHistogram(r, tags, 4), {
    chat_only: [0, 0, 0, 2],
    base_only: [1, 0, 0, 0],
    shared: [0, 0, 1, 0],
    other: [1, 1, 1, 0],
  });
});
