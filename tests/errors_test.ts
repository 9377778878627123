import { assert, assertEquals, assertMatch } from "./assert.ts";
import { join } from "node:path";
import { ensureFixtureModel } from "../lib/fixtures/build.ts";
import { meaningfulLines, runScript } from "./helpers.ts";
import { tempDir } from "./temp.ts";

/** Asserts a failed run printed exactly one `error:` line matching `pattern` and no stack trace. */
function assertOneErrorLine(result: { code: number; stderr: string }, pattern: RegExp) {
  assert(result.code !== 0, "non-zero exit");
  const lines = meaningfulLines(result.stderr);
  assertEquals(lines.length, 1, `one line on stderr, got:\n${result.stderr}`);
  assertMatch(lines[0], /^error: /);
  assertMatch(lines[0], pattern);
}

/** A copy of a fixture model directory whose onnx/model.onnx is replaced by `bytes`. */
async function corruptCopy(bytes: (original: Uint8Array) => Uint8Array): Promise<string> {
  const source = await ensureFixtureModel("tiny-gemma2-chat-optimum");
  const dir = await tempDir("corrupt-model-");
  await Deno.mkdir(join(dir, "onnx"));
  for (const file of ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"]) {
    await Deno.copyFile(join(source, file), join(dir, file));
  }
  await Deno.writeFile(join(dir, "onnx", "model.onnx"), bytes(await Deno.readFile(join(source, "onnx", "model.onnx"))));
  return dir;
}

Deno.test("a missing model directory gives one clear line and a non-zero exit", async () => {
  const result = await runScript("generate.ts", ["--model", "./no/such/model-dir", "--device", "cpu"]);
  assertOneErrorLine(result, /model directory not found: \.\/no\/such\/model-dir/);
});

Deno.test("a hub id that cannot be downloaded gives one clear line", async () => {
  const cache = await tempDir("hub-cache-");
  // An unroutable endpoint: the download fails at once, as it does on a machine without network.
  const result = await runScript("generate.ts", ["--model", "no-such-org/no-such-model", "--device", "cpu"], {
    MODEL_DIFF_HUB_CACHE: cache,
    HF_ENDPOINT: "http://127.0.0.1:9",
  });
  assertOneErrorLine(result, /could not reach the Hugging Face hub for no-such-org\/no-such-model/);
});

Deno.test("a model directory without an ONNX file says what is missing", async () => {
  const dir = await tempDir("empty-model-");
  await Deno.writeTextFile(join(dir, "config.json"), "{}");
  const result = await runScript("generate.ts", ["--model", dir, "--device", "cpu"]);
  assertOneErrorLine(result, /has no tokenizer\.json/);
});

for (const device of ["webgpu", "cpu"]) {
  for (
    const [kind, corrupt] of [
      ["truncated", (b: Uint8Array) => b.slice(0, Math.floor(b.length / 2))],
      ["garbage", () => new TextEncoder().encode("this is not an ONNX model\n".repeat(100))],
    ] as const
  ) {
    Deno.test(`a ${kind} model file on ${device} gives one clear line and a non-zero exit`, async () => {
      const dir = await corruptCopy(corrupt);
      const result = await runScript("generate.ts", ["--model", dir, "--device", device]);
      assertOneErrorLine(result, /model\.onnx|could not load/);
      await Deno.remove(dir, { recursive: true });
    });
  }
}

Deno.test("no WebGPU adapter: --device webgpu gives one clear line with the fix and a non-zero exit; auto runs on the CPU", async () => {
  const dir = await ensureFixtureModel("tiny-llama-chat");
  // wgpu has no Metal backend on Linux, so this leaves Deno with no adapter at all.
  const noAdapter = { DENO_WEBGPU_BACKEND: "metal" };
  const result = await runScript("generate.ts", ["--model", dir, "--device", "webgpu"], noAdapter);
  assertOneErrorLine(result, /no WebGPU adapter found: .*mesa-vulkan-drivers.*--device cpu/);
  // The default, auto, runs on the CPU instead and says why in one line.
  const auto = await runScript("generate.ts", ["--model", dir, "--max-new-tokens", "2"], noAdapter);
  assertEquals(auto.code, 0, auto.stderr);
  const lines = auto.stdout.split("\n").filter((line) => line.startsWith("device "));
  assertEquals(lines.length, 1, auto.stdout);
  assert(/^device cpu \(auto: no WebGPU adapter; /.test(lines[0]), lines[0]);
});

Deno.test("an unknown flag and a bad --device are user errors", async () => {
  assertOneErrorLine(await runScript("generate.ts", ["--frobnicate"]), /Unknown option '--frobnicate'/);
  assertOneErrorLine(await runScript("generate.ts", ["--device", "tpu"]), /unknown device "tpu"/);
});

Deno.test("--dtype: an unknown precision, and fp16 on the CPU, give one line each", async () => {
  assertOneErrorLine(
    await runScript("generate.ts", ["--model", "./unused", "--dtype", "fp64"]),
    /unknown dtype "fp64": use --dtype fp32 or --dtype fp16/,
  );
  assertOneErrorLine(
    await runScript("capture.ts", ["--device", "cpu", "--dtype", "fp16"]),
    /fp16 graphs run on webgpu only: use --dtype fp32 with --device cpu/,
  );
});
