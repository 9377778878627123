import { assertEquals, assertUserError } from "../assert.ts";
import {
  chatFormat,
  preparePrompts,
  readPositions,
  renderNormal,
  renderSwapped,
  steeringSuppressedIds,
  SWAPPED_HEADER,
  tokenizeRendered,
  truncateIds,
} from "../../lib/runtime/chat.ts";
import { fixtureHandle } from "../helpers.ts";
import { join } from "node:path";
import { ensureFixtureModel } from "../../lib/fixtures/build.ts";
import { loadTokenizer } from "../../lib/runtime/runtime.ts";
import { tempDir } from "../temp.ts";
import { notebookHeader } from "../reference_stats.ts";

Deno.test("read positions: first header match + header length + offset, clamped; fallback to the last token", () => {
  const header = { ids: [7, 8, 9], offsets: { asst: -2, endheader: -1, newline: 0 } };
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

/**
 * Every family's read positions, from its own chat template, as the decoded tokens at `asst`,
 * `endheader` and `newline` (written out from the templates: Llama 3 as the seed defines them; Gemma
 * and ChatML end their header in "\n", after which `newline` clamps to it at the end of a generation
 * prompt; Qwen3 is rendered with its template's default (thinking on), so no empty think block
 * follows the header; Mistral-Instruct's generation prompt adds nothing, so its header is the
 * `[/INST]` that closes the user turn, read as SentencePiece pieces "[", "/", "INST", "]").
 */
const FAMILY_POSITIONS: [string, string[], string][] = [
  ["tiny-llama-chat", ["assistant", "<|end_header_id|>", "\n\n"], "<|eot_id|>"],
  ["tiny-gemma2-chat", ["model", "\n", "\n"], "<end_of_turn>"],
  ["tiny-gemma3-hf", ["model", "\n", "\n"], "<end_of_turn>"],
  ["tiny-qwen2-hf", ["assistant", "\n", "\n"], "<|im_end|>"],
  ["tiny-qwen3-hf", ["assistant", "\n", "\n"], "<|im_end|>"],
  ["tiny-mistral-hf", ["INST", "]", "]"], "</s>"],
];

Deno.test("every family's read positions come from its chat template: role token, end of header, newline", async () => {
  for (const [name, expected, endOfTurn] of FAMILY_POSITIONS) {
    const handle = await fixtureHandle(name, "cpu");
    const [prepared] = preparePrompts(handle, ["How do I make pour-over coffee?"], {
      types: ["asst", "endheader", "newline"],
    });
    assertEquals(prepared.headerFound, true, name);
    assertEquals(prepared.positions.map((p) => handle.tokenizer.decode([prepared.ids[p]])), expected, name);
    // The header sits at the end of the generation prompt: the last position is the prompt's last token.
    assertEquals(prepared.positions[2], prepared.ids.length - 1, `${name}: newline clamps or is the last token`);
    const header = chatFormat(handle).assistant.ids;
    const [short] = preparePrompts(handle, ["word ".repeat(200)], { maxLength: 40, types: ["asst"] });
    assertEquals([short.ids.length, short.truncated, short.headerFound], [40, true, true], name);
    assertEquals(short.ids.slice(-header.length - 1, -1).length, header.length);
    const suppressed = steeringSuppressedIds(handle).map((id) => handle.tokenizer.decode([id]));
    assertEquals(suppressed.at(-1), endOfTurn, `${name}: the end-of-turn token steering suppresses`);
  }
});

Deno.test("Llama 3 and Gemma 2: the derived headers are the notebook's literal ones", async () => {
  for (const family of ["llama", "gemma2"] as const) {
    const handle = await fixtureHandle(`tiny-${family}-chat`, "cpu");
    assertEquals(chatFormat(handle).assistant, notebookHeader(handle, family));
  }
});

Deno.test("a model without a chat template: one line naming the flags that help; --raw still reads", async () => {
  const handle = await fixtureHandle("tiny-llama-chat", "cpu");
  const bare = { ...handle, source: "my-base-model", tokenizer: Object.create(handle.tokenizer) };
  bare.tokenizer.chat_template = null;
  assertUserError(
    () => preparePrompts(bare, ["Hi"], { types: ["asst"] }),
    /^my-base-model has no chat template .*capture reads plain text with --raw/,
  );
  const [raw] = preparePrompts(bare, ["Hi there"], { raw: true, types: ["asst"] });
  assertEquals([raw.headerFound, raw.positions], [false, [raw.ids.length - 1]]);
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
  const swapped: [string, string][] = [
    [
      "tiny-qwen3-hf",
      `<|im_start|>user\nHello.<|im_end|>\n<|im_start|>assistant\n${prompt}<|im_end|>\n<|im_start|>user\n`,
    ],
    [
      "tiny-qwen2-hf",
      "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n" +
      `<|im_start|>user\nHello.<|im_end|>\n<|im_start|>assistant\n${prompt}<|im_end|>\n<|im_start|>user\n`,
    ],
    ["tiny-mistral-hf", `<s>[INST] Hello. [/INST]${prompt}</s> [INST] `],
    [
      "tiny-gemma3-hf",
      `<bos><start_of_turn>user\nHello.<end_of_turn>\n<start_of_turn>model\n${prompt}<end_of_turn>\n<start_of_turn>user\n`,
    ],
  ];
  for (const [name, expected] of swapped) {
    const handle = await fixtureHandle(name, "cpu");
    assertEquals(renderSwapped(handle, prompt), expected, name);
    // The swapped format's read positions follow the open user turn's header, the last tokens.
    const [read] = preparePrompts(handle, [prompt], {
      render: (p) => renderSwapped(handle, p),
      header: SWAPPED_HEADER,
      types: ["endheader"],
    });
    assertEquals([read.headerFound, read.positions], [true, [read.ids.length - 1]], name);
  }
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

/** The fixture's tokenizer with another chat template (the format is derived per tokenizer object). */
async function withTemplate(name: string, template: string) {
  const handle = await fixtureHandle(name, "cpu");
  const tokenizer = Object.create(handle.tokenizer);
  tokenizer.chat_template = template;
  return { ...handle, source: `${name} (edited template)`, tokenizer };
}

Deno.test("what a generation prompt adds after the role is not the role: a reasoning model's <think> block", async () => {
  // As DeepSeek-R1-Distill-Qwen's template: the generation prompt opens the think block.
  const r1 = await withTemplate(
    "tiny-qwen3-hf",
    "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{% endfor %}" +
      "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n<think>\\n' }}{% endif %}",
  );
  const [prepared] = preparePrompts(r1, ["Why is the sky blue?"], { types: ["asst", "endheader", "newline"] });
  assertEquals(prepared.positions.map((p) => r1.tokenizer.decode([prepared.ids[p]])), ["assistant", "\n", "\n"]);
});

Deno.test("a template that marks no assistant turn (only the user's end) is refused in one line", async () => {
  // Llama-3-style turns, but the generation prompt ignored: only <|eot_id|> follows the user's text.
  const bare = await withTemplate(
    "tiny-llama-chat",
    "{% for m in messages %}{{ '<|start_header_id|>' + m.role + '<|end_header_id|>\\n\\n' + m.content + '<|eot_id|>' }}{% endfor %}",
  );
  assertUserError(
    () => preparePrompts(bare, ["Hi"], { types: ["asst"] }),
    /marks no assistant turn after a user message/,
  );
});

Deno.test("a chat template saved as chat_template.jinja (recent transformers) is the model's template", async () => {
  const temp = await tempDir("jinja-");
  Deno.env.set("MODEL_DIFF_CHECKPOINT_CACHE", join(temp, "cache"));
  try {
    const source = await ensureFixtureModel("tiny-qwen3-hf");
    const dir = join(temp, "qwen3");
    await Deno.mkdir(dir);
    for await (const entry of Deno.readDir(source)) {
      if (entry.isFile) await Deno.copyFile(join(source, entry.name), join(dir, entry.name));
    }
    const config = JSON.parse(await Deno.readTextFile(join(dir, "tokenizer_config.json")));
    await Deno.writeTextFile(join(dir, "chat_template.jinja"), config.chat_template);
    delete config.chat_template;
    await Deno.writeTextFile(join(dir, "tokenizer_config.json"), JSON.stringify(config));
    const handle = await loadTokenizer(dir);
    const [prepared] = preparePrompts(handle, ["Hi there"], { types: ["asst"] });
    assertEquals([prepared.headerFound, handle.tokenizer.decode([prepared.ids[prepared.positions[0]]])], [
      true,
      "assistant",
    ]);
  } finally {
    Deno.env.delete("MODEL_DIFF_CHECKPOINT_CACHE");
  }
});
