import { assertEquals } from "./assert.ts";
import { assistantHeaderIds, preparePrompts, readPositions, truncateIds } from "../lib/chat.ts";
import { fixtureHandle } from "./helpers.ts";

Deno.test("read positions: first header match + header length + offset, clamped; fallback to the last token", () => {
  const header = [7, 8, 9];
  const ids = [1, 2, 7, 8, 9, 5, 6];
  assertEquals(readPositions(ids, header, ["asst", "endheader", "newline"]), {
    positions: [3, 4, 5],
    headerFound: true,
  });
  assertEquals(readPositions([1, 7, 8, 9], header, ["newline"]).positions, [3], "clamped into the sequence");
  assertEquals(readPositions([1, 2, 3], header, ["asst"]), { positions: [2], headerFound: false });
});

Deno.test("truncation keeps the start and the generation header", () => {
  assertEquals(truncateIds([1, 2, 3, 4, 5, 6, 7, 8], 5, 2), { ids: [1, 2, 3, 7, 8], truncated: true });
  assertEquals(truncateIds([1, 2], 5, 2), { ids: [1, 2], truncated: false });
});

Deno.test("Llama 3.1 and Gemma 2 headers: positions land on the role token, end of header and newline", async () => {
  for (
    const [name, expected] of [
      ["tiny-llama-chat", ["assistant", "<|end_header_id|>", "\n\n"]],
      ["tiny-gemma2-chat", ["model", "\n", "\n"]],
    ] as const
  ) {
    const handle = await fixtureHandle(name, "cpu");
    const header = assistantHeaderIds(handle);
    assertEquals(header.length, 3, `${name} header tokens`);
    const [prepared] = preparePrompts(handle, ["How do I make pour-over coffee?"], {
      types: ["asst", "endheader", "newline"],
    });
    assertEquals(prepared.headerFound, true);
    assertEquals(prepared.positions.map((p) => handle.tokenizer.decode([prepared.ids[p]])), [...expected]);
    const [short] = preparePrompts(handle, ["word ".repeat(200)], { maxLength: 40, types: ["asst"] });
    assertEquals([short.ids.length, short.truncated, short.headerFound], [40, true, true]);
  }
});
