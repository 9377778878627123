import { assertEquals } from "../assert.ts";
import type { PreparedPrompt } from "../../lib/runtime/chat.ts";
import { klTopRows } from "../../lib/report/kl.ts";

Deno.test("KL table: a top token at the first position has an empty context (a decoder refuses no ids)", () => {
  const prompt: PreparedPrompt = {
    prompt: "p",
    text: "p",
    ids: [5, 6, 7],
    positions: [],
    headerFound: false,
    truncated: false,
  };
  // As transformers.js's decode: an empty id list is an error.
  const decode = (ids: number[]) => {
    if (ids.length === 0) throw new Error("token_ids must be a non-empty array of integers.");
    return ids.map((id) => `<${id}>`).join("");
  };
  const token = { prompt: 0, position: 0, tokenId: 5, types: ["other"], kl: 1, chatTop: 9, baseTop: 8 };
  const later = { ...token, position: 2, tokenId: 7, kl: 0.5 };
  const rows = klTopRows([token, later], [prompt], decode, 2);
  assertEquals(rows.map((r) => [r.text, r.context, r.next]), [["<5>", "", "<6>"], ["<7>", "<5><6>", ""]]);
});
