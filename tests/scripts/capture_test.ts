import { assert, assertClose, assertEquals } from "../assert.ts";
import { renderSwapped, tokenizeRendered } from "../../lib/runtime/chat.ts";
import { join } from "node:path";
import { ensureFixtureModel } from "../../lib/fixtures/build.ts";
import { pickDevice } from "../../lib/backend/device.ts";
import { probeAdapter } from "../../lib/backend/gpu.ts";
import { referenceForward } from "../../lib/fixtures/reference.ts";
import { openSafetensors } from "../../lib/io/safetensors_file.ts";
import { fixtureHandle, fixtureReference, meaningfulLines, runScript } from "../helpers.ts";
import { tempDir } from "../temp.ts";

/** Residuals (f32 runtimes) against the f64 reference, per element. Observed worst: 1.9e-5 absolute (values up to 11). */
const RESIDUAL_TOLERANCE = { rtol: 1e-4, atol: 1e-4 };

const PROMPTS = ["Who are you?", "What is the meaning of life?", "Write a SQL query that counts orders per customer."];

/** A safetensors reader written from the format description alone (independent of lib/io). */
async function readSafetensorsBySpec(path: string) {
  const bytes = await Deno.readFile(path);
  const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
  const base = 8 + headerLength;
  const tensor = (name: string) => {
    const { dtype, shape, data_offsets: [a, b] } = header[name];
    assertEquals(dtype, "F32");
    return { shape: shape as number[], data: new Float32Array(bytes.slice(base + a, base + b).buffer) };
  };
  return { metadata: header.__metadata__ as Record<string, string>, tensor };
}

interface CaptureMetadata {
  layers: number[];
  positions: string;
  offsets?: number[];
  prompts: { prompt: string; text: string; token_ids: number[]; positions: number[] }[];
}

async function capture(name: string, device: string, positions: string, layers: string) {
  const dir = await tempDir("capture-");
  const promptFile = join(dir, "prompts.txt");
  await Deno.writeTextFile(promptFile, PROMPTS.join("\n") + "\n");
  const out = join(dir, "out.safetensors");
  const args = ["--model", await ensureFixtureModel(name), "--prompts", promptFile, "--layers", layers];
  // fp32 (the default on a GPU with shader-f16 is fp16; tests/models/float16_test.ts covers that).
  const result = await runScript("capture.ts", [
    ...[...args, "--positions", positions, "--out", out, "--device", device, "--dtype", "fp32"],
  ]);
  assertEquals(result.code, 0, result.stderr);
  const file = await readSafetensorsBySpec(out);
  // Our own loader reads the same file.
  const own = await openSafetensors(out);
  assertEquals(Object.keys(own.tensors).sort(), layers.split(",").map((l) => `resid_post.${l}`).sort());
  return { file, metadata: JSON.parse(file.metadata.metadata) as CaptureMetadata };
}

// The demo checkpoints (F32 Llama, BF16 sharded Gemma 2) on both runtimes, Llama 3.1's rope scaling,
// and an Optimum export: every read-position rule on some of them.
const CASES = [
  ["tiny-llama-chat", "cpu", "asst,endheader,newline"],
  ["tiny-llama-chat", "webgpu", "all"],
  ["tiny-gemma2-chat", "webgpu", "asst,endheader,newline"],
  ["tiny-gemma2-chat", "cpu", "last"],
  ["tiny-llama31-chat-hf", "cpu", "all"],
  ["tiny-llama-chat-optimum", "webgpu", "last"],
  // Gemma 3 (BF16), read at Gemma's turn header.
  ["tiny-gemma3-hf", "cpu", "asst,endheader,newline"],
];

for (const [name, device, positions] of CASES) {
  {
    Deno.test(`capture ${name} (${device}, positions ${positions}): tensors equal the f64 reference`, async () => {
      const { file, metadata } = await capture(name, device, positions, "0,2,3");
      const handle = await fixtureHandle(name, "cpu");
      const { config, weights } = fixtureReference(name);
      assertEquals(metadata.layers, [0, 2, 3]);
      const pairs: [Float32Array, Float64Array][] = [];
      for (const layer of metadata.layers) {
        const { shape, data } = file.tensor(`resid_post.${layer}`);
        const d = config.hiddenSize;
        metadata.prompts.forEach((p, i) => {
          // The ids are the tokenizer's for the chat-formatted prompt.
          const text = handle.tokenizer.apply_chat_template([{ role: "user", content: PROMPTS[i] }], {
            add_generation_prompt: true,
            tokenize: false,
          }) as string;
          assertEquals(p.text, text);
          assertEquals(p.token_ids, handle.tokenizer.encode(text, { add_special_tokens: false }));
          const reference = referenceForward(config, weights, p.token_ids, { layers: layer + 1 }).residuals[layer + 1];
          p.positions.forEach((t, k) => {
            const row = positions === "all" ? metadata.offsets![i] + k : i * shape[1] + k;
            pairs.push([data.subarray(row * d, (row + 1) * d), reference[t]]);
          });
        });
        if (positions === "all") assertEquals(shape, [metadata.offsets!.at(-1)!, d]);
        else assertEquals(shape, [PROMPTS.length, positions === "last" ? 1 : 3, d]);
      }
      pairs.forEach(([ours, reference], i) =>
        assertClose(ours, reference, { ...RESIDUAL_TOLERANCE, label: `vector ${i}` })
      );
      if (positions.startsWith("asst")) {
        // The positions read are the header's tokens: "assistant"/"model", then what follows it.
        const roleToken = handle.tokenizer.encode(name.includes("llama") ? "assistant" : "model", {
          add_special_tokens: false,
        });
        for (const p of metadata.prompts) assertEquals([p.token_ids[p.positions[0]]], roleToken);
      }
    });
  }
}

Deno.test("capture read positions in a conversation whose assistant turn has content: asst, endheader, newline are three tokens", async () => {
  // At the end of a generation prompt `newline` clamps onto the last token, so an offset error there
  // goes unseen; in a rendered conversation the assistant turn continues and every offset shows.
  const prompt = "Where did you come from?";
  for (
    const [name, expected] of [
      ["tiny-llama-chat", ["assistant", "<|end_header_id|>", "\n\n"]],
      ["tiny-gemma2-chat", ["model", "\n", "Where"]],
    ] as const
  ) {
    const handle = await fixtureHandle(name, "cpu");
    const text = renderSwapped(handle, prompt);
    const ids = tokenizeRendered(handle, text);
    // --raw adds the tokenizer's BOS itself, so the file holds the rendering without it.
    const bos = handle.tokenizer.decode([ids[0]]);
    assert(text.startsWith(bos), `${name}: the rendering starts with BOS`);
    const dir = await tempDir("capture-positions-");
    const prompts = join(dir, "prompts.jsonl");
    await Deno.writeTextFile(prompts, JSON.stringify({ prompt: text.slice(bos.length) }) + "\n");
    const out = join(dir, "out.safetensors");
    const result = await runScript("capture.ts", [
      ...["--model", await ensureFixtureModel(name), "--prompts", prompts, "--raw", "--layers", "2"],
      ...["--positions", "asst,endheader,newline", "--out", out],
    ]);
    assertEquals(result.code, 0, result.stderr);
    // No --device: auto, which says in one line what it picked (cpu on a software adapter).
    const auto = pickDevice("auto", await probeAdapter());
    assert(result.stdout.split("\n").includes(auto.reason!), `${name}: auto's line in\n${result.stdout}`);
    const file = await readSafetensorsBySpec(out);
    const [read] = (JSON.parse(file.metadata.metadata) as CaptureMetadata).prompts;
    assertEquals(read.token_ids, ids, `${name}: the rendered conversation's tokens`);
    assertEquals(read.positions.map((p) => handle.tokenizer.decode([ids[p]])), [...expected], name);
    const { config, weights } = fixtureReference(name);
    const residual = referenceForward(config, weights, ids, { layers: 3 }).residuals[3];
    const d = config.hiddenSize;
    const { data } = file.tensor("resid_post.2");
    read.positions.forEach((p, k) =>
      assertClose(data.subarray(k * d, (k + 1) * d), residual[p], { ...RESIDUAL_TOLERANCE, label: `${name} ${p}` })
    );
  }
});

Deno.test("capture: bad layers, empty or missing prompt files give one line and leave earlier output alone", async () => {
  const dir = await tempDir("capture-bad-");
  const out = join(dir, "keep.safetensors");
  await Deno.writeTextFile(out, "earlier result");
  const empty = join(dir, "empty.txt");
  await Deno.writeTextFile(empty, "\n\n");
  const model = await ensureFixtureModel("tiny-llama-chat");
  const cases: [string[], RegExp][] = [
    [["--layers", "7"], /layer 7 is out of range: this model has layers 0\.\.3/],
    [["--layers", "1,,x"], /bad --layers value/],
    [["--prompts", empty], /no prompts in/],
    [["--prompts", join(dir, "missing.jsonl")], /prompt file not found/],
    [["--positions", "middle"], /unknown token type "middle"/],
  ];
  for (const [extra, pattern] of cases) {
    const args = ["--model", model, "--prompts", empty.replace("empty", "p"), "--out", out, "--device", "cpu"];
    await Deno.writeTextFile(join(dir, "p.txt"), "Hello there\n");
    const result = await runScript("capture.ts", [...args, ...extra]);
    assert(result.code !== 0, `${extra}: non-zero exit`);
    const lines = meaningfulLines(result.stderr);
    assertEquals(lines.length, 1, result.stderr);
    assert(pattern.test(lines[0]), `${extra}: ${lines[0]}`);
  }
  assertEquals(await Deno.readTextFile(out), "earlier result");
});
