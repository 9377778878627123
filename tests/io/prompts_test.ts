import { assert, assertEquals } from "../assert.ts";
import { join } from "node:path";
import { parquetWriteBuffer } from "hyparquet-writer";
import { UserError } from "../../lib/core/errors.ts";
import { readPromptFile, samplePrompts } from "../../lib/io/prompts.ts";
import { tempDir } from "../temp.ts";

async function write(name: string, content: string | Uint8Array): Promise<string> {
  const dir = await tempDir("prompts-");
  const path = join(dir, name);
  if (typeof content === "string") await Deno.writeTextFile(path, content);
  else await Deno.writeFile(path, content);
  return path;
}

Deno.test("prompt files: text, JSON Lines (fields and lmsys conversations), JSON, CSV and Parquet", async () => {
  assertEquals(await readPromptFile(await write("p.txt", "one\n\n two \nthree\n")), ["one", " two", "three"]);
  const jsonl = [
    JSON.stringify({ prompt: "a" }),
    JSON.stringify({ text: "b" }),
    JSON.stringify({ conversation: [{ role: "user", content: "c" }, { role: "assistant", content: "x" }] }),
    JSON.stringify("d"),
  ].join("\n");
  assertEquals(await readPromptFile(await write("p.jsonl", jsonl)), ["a", "b", "c", "d"]);
  assertEquals(await readPromptFile(await write("p.json", JSON.stringify([{ instruction: "e" }, "f"]))), ["e", "f"]);
  assertEquals(await readPromptFile(await write("p.csv", 'id,prompt\n1,"hello, world"\n2,"say ""hi"""\n')), [
    "hello, world",
    'say "hi"',
  ]);
  // lmsys-chat-1m's layout: the first user turn of `conversation`.
  const parquet = parquetWriteBuffer({
    columnData: [
      { name: "conversation_id", data: ["a", "b"] },
      {
        name: "conversation",
        data: [[{ content: "first user turn", role: "user" }, { content: "reply", role: "assistant" }], [{
          content: "another",
          role: "user",
        }]],
      },
    ],
  });
  assertEquals(await readPromptFile(await write("lmsys.parquet", new Uint8Array(parquet))), [
    "first user turn",
    "another",
  ]);
});

Deno.test("empty, missing and unreadable prompt files are user errors", async () => {
  const cases: [string, RegExp][] = [
    [await write("empty.txt", "\n  \n"), /no prompts in/],
    [await write("bad.parquet", "not parquet at all"), /could not read prompts from/],
    [await write("bad.jsonl", "{oops"), /bad\.jsonl line 1 is not JSON/],
    ["/nonexistent/prompts.jsonl", /prompt file not found/],
  ];
  for (const [path, pattern] of cases) {
    try {
      await readPromptFile(path);
      throw new Error(`expected a failure for ${path}`);
    } catch (error) {
      assert(error instanceof UserError, `${path}: ${error}`);
      assert(pattern.test(error.message), error.message);
    }
  }
});

Deno.test("sampling is seeded, without replacement, and keeps everything when N is large", () => {
  const prompts = Array.from({ length: 50 }, (_, i) => `p${i}`);
  const a = samplePrompts(prompts, 10, 42);
  assertEquals(a, samplePrompts(prompts, 10, 42));
  assertEquals(new Set(a).size, 10);
  assert(a.join() !== samplePrompts(prompts, 10, 43).join(), "another seed, another sample");
  assertEquals(samplePrompts(prompts, 100, 42), prompts);
});

Deno.test("parsePrompts: a file's bytes and name in (what a page hands over), the same prompts out", async () => {
  const { parsePrompts } = await import("../../lib/io/prompt_parse.ts");
  const bytes = new TextEncoder().encode('{"prompt":"a"}\n{"text":"b"}\n');
  assertEquals(await parsePrompts(bytes, "picked.JSONL"), ["a", "b"]);
  assertEquals(await parsePrompts(new TextEncoder().encode("x\ny\n"), "C:\\dir.v2\\pasted"), ["x", "y"]);
  const parquet = new Uint8Array(parquetWriteBuffer({ columnData: [{ name: "prompt", data: ["p", "q"] }] }));
  assertEquals(await parsePrompts(parquet.subarray(0), "p.parquet"), ["p", "q"]);
});

Deno.test("parseCsvRows: quotes, doubled quotes, newlines inside quotes, CRLF and blank lines", async () => {
  const { parseCsvRows } = await import("../../lib/io/prompt_parse.ts");
  assertEquals(parseCsvRows('id,prompt\r\n1,"a, ""b""\nc"\r\n\r\n2,d\n3,\n'), [
    { id: "1", prompt: 'a, "b"\nc' },
    { id: "2", prompt: "d" },
    { id: "3", prompt: "" },
  ]);
  assertEquals(parseCsvRows(""), []);
  let message = "";
  try {
    parseCsvRows('prompt\n"open');
  } catch (error) {
    message = (error as Error).message;
  }
  assert(message.includes("not closed"), message);
});
