import { assertEquals } from "./assert.ts";
import {
  assistantHeaderIds,
  preparePrompts,
  readPositions,
  renderNormal,
  renderSwapped,
  tokenizeRendered,
  truncateIds,
} from "../lib/chat.ts";
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

Deno.test("role swap from messages: the model's turn holds the prompt and a user turn is left open", async () => {
  const prompt = "Where did you come from?";
  const gemma = await fixtureHandle("tiny-gemma2-chat", "cpu");
  // The notebook's Gemma output, which its string replacement produced.
  assertEquals(
    renderSwapped(gemma, prompt),
    `<bos><start_of_turn>user\nHello.<end_of_turn>\n<start_of_turn>model\n${prompt}<end_of_turn>\n<start_of_turn>user\n`,
  );
  assertEquals(renderNormal(gemma, prompt), `<bos><start_of_turn>user\n${prompt}<end_of_turn>\n<start_of_turn>model\n`);
  const llama = await fixtureHandle("tiny-llama-chat", "cpu");
  const system =
    "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|>";
  assertEquals(
    renderSwapped(llama, prompt),
    `<|begin_of_text|>${system}<|start_header_id|>user<|end_header_id|>\n\nHello.<|eot_id|>` +
      `<|start_header_id|>assistant<|end_header_id|>\n\n${prompt}<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n`,
  );
  // Token structure: turns open with the family's turn token and the sequence ends inside an open user turn.
  for (
    const [handle, turnStart, userHeader] of [
      [gemma, "<start_of_turn>", ["<start_of_turn>", "user", "\n"]],
      [llama, "<|start_header_id|>", ["<|start_header_id|>", "user", "<|end_header_id|>", "\n\n"]],
    ] as const
  ) {
    const ids = tokenizeRendered(handle, renderSwapped(handle, prompt));
    const tokens = ids.map((id) => handle.tokenizer.decode([id]));
    assertEquals(tokens.filter((t) => t === turnStart).length, handle === llama ? 4 : 3);
    assertEquals(tokens.slice(-userHeader.length), [...userHeader]);
    const normal = tokenizeRendered(handle, renderNormal(handle, prompt)).map((id) => handle.tokenizer.decode([id]));
    assertEquals(normal.at(-2 - (handle === llama ? 1 : 0)), handle === llama ? "assistant" : "model");
  }
});
