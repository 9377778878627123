import { assert, assertEquals, assertMatch } from "../assert.ts";
import { join } from "node:path";
import { decodeControlVector, encodeControlVector, readControlVector } from "../../lib/io/control_vector.ts";
import { UserError } from "../../lib/core/errors.ts";
import { ensureFixtureModel, ensureFixtureSae } from "../../lib/fixtures/build.ts";
import { encodeGguf } from "../../lib/io/gguf.ts";
import { writeSafetensors } from "../../lib/io/safetensors_file.ts";
import { SeededRandom } from "../../lib/core/random.ts";
import { loadSae } from "../../lib/sae/load.ts";
import { exportControlVector } from "../../lib/run/vector_export.ts";
import { loadVector } from "../../lib/io/vectors.ts";
import { meaningfulLines, runScript } from "../helpers.ts";
import { tempDir } from "../temp.ts";

const WIDTH = 48;
const random = new SeededRandom(11);
const DIRECTIONS = new Map([1, 3, 7].map((layer) => [layer, Float32Array.from(random.normals(WIDTH))]));

/**
 * A GGUF reader written from the spec (ggml-org/ggml docs/gguf.md), sharing nothing with lib/io/gguf.ts:
 * header (magic "GGUF", u32 version, u64 tensor count, u64 kv count), key/values (u64-length strings,
 * u32 value type: 4 = UINT32, 8 = STRING, others by their fixed sizes), tensor infos (name, u32 n_dims,
 * u64 dims, u32 ggml type, u64 offset), then the data section at the next multiple of the alignment (32).
 */
function specReader(bytes: Uint8Array) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let p = 0;
  const u32 = () => (p += 4, view.getUint32(p - 4, true));
  const u64 = () => (p += 8, Number(view.getBigUint64(p - 8, true)));
  const str = () => {
    const n = u64();
    p += n;
    return new TextDecoder().decode(bytes.slice(p - n, p));
  };
  const magic = new TextDecoder().decode(bytes.slice(0, 4));
  p = 4;
  const version = u32();
  const nTensors = u64();
  const nKv = u64();
  const kv: Record<string, string | number> = {};
  const kvTypes: Record<string, number> = {};
  const fixed: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
  for (let i = 0; i < nKv; i++) {
    const key = str();
    const type = u32();
    kvTypes[key] = type;
    if (type === 8) kv[key] = str();
    else if (type === 4) kv[key] = u32();
    else if (type in fixed) p += fixed[type];
    else throw new Error(`value type ${type} not expected in a control vector`);
  }
  const tensors: { name: string; dims: number[]; type: number; offset: number }[] = [];
  for (let i = 0; i < nTensors; i++) {
    const name = str();
    const dims = Array.from({ length: u32() }, u64);
    tensors.push({ name, dims, type: u32(), offset: u64() });
  }
  const headerEnd = p;
  const dataStart = Math.ceil(headerEnd / 32) * 32;
  const data = (t: (typeof tensors)[number]) => {
    const start = dataStart + t.offset;
    return new Float32Array(bytes.slice(start, start + 4 * t.dims[0]).buffer);
  };
  return { magic, version, kv, kvTypes, tensors, headerEnd, dataStart, data };
}

Deno.test("control vector GGUF: write/read round trip is exact, and an independent reader of the spec parses it", () => {
  const bytes = encodeControlVector({ modelHint: "gemma2", directions: DIRECTIONS });
  const back = decodeControlVector(bytes, "v.gguf");
  assertEquals(back.modelHint, "gemma2");
  assertEquals([...back.directions.keys()], [1, 3, 7]);
  for (const [layer, direction] of DIRECTIONS) assertEquals(back.directions.get(layer), direction);
  assertEquals(encodeControlVector(back), bytes, "re-encoding gives the same bytes");

  const file = specReader(bytes);
  assertEquals([file.magic, file.version], ["GGUF", 3]);
  // The keys repeng's export_gguf writes (GGUFWriter(path, "controlvector") adds general.architecture).
  assertEquals(file.kv, {
    "general.architecture": "controlvector",
    "controlvector.model_hint": "gemma2",
    "controlvector.layer_count": 3,
  });
  assertEquals(file.kvTypes["controlvector.layer_count"], 4, "layer_count is a UINT32 (add_uint32)");
  assertEquals(file.tensors.map((t) => t.name), ["direction.1", "direction.3", "direction.7"]);
  for (const tensor of file.tensors) {
    assertEquals([tensor.dims, tensor.type], [[WIDTH], 0], `${tensor.name}: 1-D F32`);
    assertEquals(tensor.offset % 32, 0, `${tensor.name} aligned`);
    assertEquals(file.data(tensor), DIRECTIONS.get(Number(tensor.name.split(".")[1])));
  }
  assert(file.dataStart >= file.headerEnd && file.dataStart % 32 === 0);
  assert(bytes.slice(file.headerEnd, file.dataStart).every((b) => b === 0), "padding is zeros");
  // Each tensor is padded to the alignment, the last one too (gguf-py's write_padding after each).
  assertEquals(bytes.length, file.dataStart + 3 * Math.ceil((4 * WIDTH) / 32) * 32);
});

Deno.test("layer numbering: direction.L reaches llama.cpp's block L, whose output our --layer L steers", async () => {
  const dir = await tempDir("cv-");
  const json = join(dir, "v.json");
  await Deno.writeTextFile(json, JSON.stringify([...DIRECTIONS.get(3)!]));
  const out = join(dir, "v.gguf");
  await exportControlVector({ source: { kind: "file", path: json }, out, layers: [3], modelHint: "llama" });
  const file = specReader(await Deno.readFile(out));
  assertEquals(file.tensors.map((t) => t.name), ["direction.3"]);
  // llama.cpp, as its code reads: common_control_vector_load_one parses the index after "direction.",
  // refuses 0, and stores it at `data + n_embd * (layer_idx - 1)` ("layer 1 at [0]");
  // llama_adapter_cvec::apply copies `data + n_embd * (il - 1)` into tensors[il] for il = 1..n_layer-1
  // (src/llama-adapter.cpp), and each model graph adds tensors[il] to block il's output
  // (`cur = build_cvec(cur, il); cb(cur, "l_out", il)`), the residual we call "after layer il".
  const nLayer = 4;
  const data = new Float32Array(WIDTH * nLayer);
  for (const t of file.tensors) {
    const index = Number(t.name.slice("direction.".length));
    data.set(file.data(t), WIDTH * (index - 1));
  }
  for (let il = 1; il < nLayer; il++) {
    const reaching = data.slice(WIDTH * (il - 1), WIDTH * il);
    const expected = il === 3 ? DIRECTIONS.get(3)! : new Float32Array(WIDTH);
    assertEquals(reaching, expected, `block ${il}`);
  }
  // Layer 0 has no control vector in llama.cpp ("there's never a tensor for layer 0"): refused, one line.
  let message = "";
  await exportControlVector({ source: { kind: "file", path: json }, out, layers: [0], modelHint: "llama" })
    .catch((e) => (message = e instanceof UserError ? e.message : String(e)));
  assertMatch(message, /^llama\.cpp applies no control vector after layer 0/);
});

Deno.test("vector sources: contrast file (all layers), ADL file (its layer), SAE feature decoder row, magnitude folded", async () => {
  const dir = await tempDir("cv-");
  const contrast = join(dir, "contrast_vectors.safetensors");
  const tensor = (v: Float32Array) => ({ dtype: "F32" as const, shape: [v.length], data: v });
  await writeSafetensors(contrast, Object.fromEntries([...DIRECTIONS].map(([l, v]) => [`contrast.${l}`, tensor(v)])));
  const out = join(dir, "all.gguf");
  const model = { modelType: "gemma2", dModel: WIDTH, layers: 8 };
  await exportControlVector({ source: { kind: "file", path: contrast }, out, layers: "all", model, magnitude: -2.5 });
  const all = await readControlVector(out);
  assertEquals(all.modelHint, "gemma2");
  for (const [layer, v] of DIRECTIONS) assertEquals(all.directions.get(layer), v.map((x) => x * -2.5));

  const adl = join(dir, "adl_vectors.safetensors");
  await writeSafetensors(adl, { "adl.asst": tensor(DIRECTIONS.get(1)!), "adl.newline": tensor(DIRECTIONS.get(3)!) }, {
    format: "model-diff/adl/1",
    metadata: JSON.stringify({ layer: 5 }),
  });
  await exportControlVector({ source: { kind: "file", path: adl, name: "adl.newline" }, out, model });
  assertEquals([...(await readControlVector(out)).directions], [[5, DIRECTIONS.get(3)!]]);

  const saeDir = await ensureFixtureSae("tiny-gemma2-sae-gemmascope");
  const sae = await loadSae(saeDir);
  await exportControlVector({ source: { kind: "sae", sae: saeDir, feature: 7 }, out, layers: [2], model });
  const { dIn } = sae.config;
  assertEquals([...(await readControlVector(out)).directions], [[2, sae.wDec.slice(7 * dIn, 8 * dIn)]]);

  // Thunks, run one at a time: a rejection must not happen before its handler is attached.
  const errors: [() => Promise<unknown>, RegExp][] = [
    [
      () => exportControlVector({ source: { kind: "file", path: contrast }, out, model }),
      /pass --layer L, a list or all/,
    ],
    [() => exportControlVector({ source: { kind: "file", path: adl }, out, model }), /is an ADL file: pick a position/],
    [() => exportControlVector({ source: { kind: "sae", sae: saeDir, feature: 9999 }, out, model }), /out of range/],
    [
      () => exportControlVector({ source: { kind: "file", path: contrast }, out, layers: [1] }),
      /pass --model .* or --model-hint/,
    ],
    [
      () =>
        exportControlVector({
          source: { kind: "file", path: contrast },
          out,
          layers: [1],
          model: { ...model, dModel: 64 },
        }),
      /48 dimensions but the model has d_model 64/,
    ],
  ];
  for (const [run, pattern] of errors) {
    let message = "";
    await run().catch((e) => (message = e instanceof UserError ? e.message : `not a UserError: ${e}`));
    assertMatch(message, pattern);
    assertEquals(message.split("\n").length, 1);
  }
});

Deno.test("--vector FILE.gguf: another architecture, another width, a missing layer are one line each", async () => {
  const dir = await tempDir("cv-");
  const path = (name: string) => join(dir, name);
  await Deno.writeFile(
    path("llama.gguf"),
    encodeGguf([["general.architecture", { type: "string", value: "llama" }]], [
      { name: "token_embd.weight", dims: [4, 2], data: new Float32Array(8) },
    ]),
  );
  await Deno.writeFile(path("v.gguf"), encodeControlVector({ modelHint: "gemma2", directions: DIRECTIONS }));
  await Deno.writeFile(path("not.gguf"), new TextEncoder().encode("not a gguf at all"));
  const cases: [string, number, number, RegExp][] = [
    ["llama.gguf", 1, WIDTH, /is a GGUF of architecture llama, not a llama\.cpp control vector/],
    ["v.gguf", 1, 64, /has 48 dimensions but the model has d_model 64/],
    ["v.gguf", 2, WIDTH, /has no direction\.2 \(it has layers 1, 3, 7\): steer at one of those with --layer/],
    ["not.gguf", 1, WIDTH, /is not a GGUF file/],
  ];
  for (const [file, layer, dModel, pattern] of cases) {
    let message = "";
    await loadVector(path(file), { layer, dModel }).catch((
      e,
    ) => (message = e instanceof UserError ? e.message : `${e}`));
    assertMatch(message, pattern);
    assertEquals(message.split("\n").length, 1);
  }
  assertEquals(await loadVector(path("v.gguf"), { layer: 3, dModel: WIDTH }), DIRECTIONS.get(3));
  // Through the script: exit 1, one line, no stack.
  const run = await runScript("vector.ts", [
    "--vector",
    path("v.gguf"),
    "--layer",
    "0",
    "--model-hint",
    "x",
    "--out",
    path("o.gguf"),
  ]);
  assertEquals(run.code, 1, run.stderr);
  assertEquals(meaningfulLines(run.stderr).length, 1, run.stderr);
  assertMatch(run.stderr, /^error: .*has no direction\.0/);
});

Deno.test("a vector read back from GGUF steers the fixture to the same greedy output as the original", async () => {
  const dir = await tempDir("cv-steer-");
  const model = await ensureFixtureModel("tiny-gemma2-chat");
  const vector = Float32Array.from(new SeededRandom(7).normals(WIDTH));
  const json = join(dir, "vector.json");
  await Deno.writeTextFile(json, JSON.stringify([...vector]));
  const prompts = join(dir, "prompts.txt");
  await Deno.writeTextFile(prompts, "Who are you?");
  // As written by the verb: plain (scaled by --mag at steer time) and with the magnitude folded in.
  for (const [name, mag] of [["plain.gguf", undefined], ["folded.gguf", "4"]] as const) {
    const run = await runScript("vector.ts", [
      "--vector",
      json,
      "--layer",
      "1",
      "--model",
      model,
      "--out",
      join(dir, name),
      ...(mag ? ["--mag", mag] : []),
    ]);
    assertEquals(run.code, 0, run.stderr);
  }
  const steer = async (file: string, mag: string) => {
    const out = join(dir, `out-${file}`);
    const run = await runScript("steer.ts", [
      ...["--model", model, "--vector", join(dir, file), "--prompts", prompts, "--layer", "1", "--mag", mag],
      ...["--greedy", "--no-suppress", "--max-new-tokens", "6", "--device", "cpu", "--out-dir", out],
    ]);
    assertEquals(run.code, 0, run.stderr);
    const results = JSON.parse(await Deno.readTextFile(join(out, "tiny-gemma2-chat_layer1_steer.json")));
    return results["Who are you?"][mag][0] as string;
  };
  const original = await steer("vector.json", "4");
  assertEquals(await steer("plain.gguf", "4"), original);
  assertEquals(await steer("folded.gguf", "1"), original);
  // The comparison can fail: without the vector the output differs (steer_test.ts shows +4 changes it).
  assert(original !== (await steer("vector.json", "0")), "the vector changes the generation");
});
