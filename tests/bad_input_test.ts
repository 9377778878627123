/**
 * Nothing wrong gets through: every bad input or fault a user can hand the toolkit, one row each. A row
 * prepares its inputs in a fresh folder, runs a task as the user would (on the CPU, with caches of its
 * own), and asserts the one `error:` line (naming the user's file or flag), exit code 1 (a user error,
 * not an internal one), and that no output file and no complete cache entry was left as if the step
 * had worked. A new case is one more row.
 */

import { assert, assertEquals, assertMatch } from "./assert.ts";
import { join } from "node:path";
import { ensureFixtureCrosscoder, ensureFixtureModel, ensureFixtureSae } from "../lib/fixtures/build.ts";
import { openSafetensors } from "../lib/io/safetensors_file.ts";
import { UserError } from "../lib/core/errors.ts";
import { modelDirFromCheckpoint } from "../lib/models/from_checkpoint.ts";
import { meaningfulLines, runScript } from "./helpers.ts";
import { tempDir } from "./temp.ts";

/** Where one case runs: its folder, its output folder (must stay without results) and cache roots. */
interface Place {
  dir: string;
  out: string;
  env: Record<string, string>;
}

/** One bad input: how to make it, the task to run on it, the line expected. */
interface Case {
  name: string;
  /** Script and flags; may write the bad files into `place.dir` first. */
  run: (place: Place) => Promise<[string, string[]]>;
  error: RegExp;
  /**
   * Caches the task may legitimately fill before it meets the bad input (e.g. the models' graphs
   * before a damaged SAE is read). Every other cache root must stay without complete entries.
   */
  cachesMayHold?: ("checkpoint" | "rewritten")[];
  /**
   * The output folder is a small tmpfs filled to the last byte before the task runs (a real ENOSPC
   * from the kernel, no seam). Mounting needs root: the row is skipped, and says so, without it.
   */
  fullDisk?: boolean;
}

/** A copy of the fixture folder `name` (files copied, not linked: a case damages them). */
async function copyFixture(name: string, into: string, ensure = ensureFixtureModel): Promise<string> {
  const source = await ensure(name);
  const target = join(into, name);
  const copy = async (from: string, to: string) => {
    await Deno.mkdir(to, { recursive: true });
    for await (const entry of Deno.readDir(from)) {
      if (entry.isDirectory) await copy(join(from, entry.name), join(to, entry.name));
      else await Deno.copyFile(join(from, entry.name), join(to, entry.name));
    }
  };
  await copy(source, target);
  return target;
}

/** Overwrites element `index` of tensor `tensor` in the safetensors file at `path` with `bits` (raw, little-endian). */
async function poke(path: string, tensor: string, index: number, bits: Uint8Array): Promise<void> {
  const header = await openSafetensors(path);
  const offset = header.fileOffset(tensor) + index * bits.length;
  const file = await Deno.open(path, { write: true });
  try {
    await file.seek(offset, Deno.SeekMode.Start);
    await file.write(bits);
  } finally {
    file.close();
  }
}

const f32 = (x: number) => new Uint8Array(Float32Array.of(x).buffer);
/** bfloat16 bits of NaN and +Infinity. */
const BF16_NAN = Uint8Array.of(0xc0, 0x7f);
const BF16_INF = Uint8Array.of(0x80, 0x7f);

/** A prompts file of two short prompts in `dir`. */
async function prompts(dir: string): Promise<string> {
  const path = join(dir, "prompts.txt");
  await Deno.writeTextFile(path, "Who are you?\nName a river.\n");
  return path;
}

/** `capture` of `model` on two prompts into the case's output folder. */
async function capture(place: Place, model: string, extra: string[] = []): Promise<[string, string[]]> {
  return ["capture.ts", [
    ...["--model", model, "--prompts", await prompts(place.dir), "--layers", "1"],
    ...["--device", "cpu", "--out", join(place.out, "capture.safetensors"), ...extra],
  ]];
}

/** Rewrites the JSON header of the safetensors file at `path` with `edit` (data bytes unchanged), then appends `extra`. */
async function editHeader(
  path: string,
  edit: (header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>) => void,
  extra = new Uint8Array(),
): Promise<void> {
  const bytes = await Deno.readFile(path);
  const length = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + length)));
  edit(header);
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (json.length % 8)) % 8);
  const encoded = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + encoded.length + bytes.length - 8 - length + extra.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(encoded.length), true);
  out.set(encoded, 8);
  out.set(bytes.subarray(8 + length), 8 + encoded.length);
  out.set(extra, out.length - extra.length);
  await Deno.writeFile(path, out);
}

/** A prompt file named `name` in the case's folder holding `bytes`. */
async function promptFile(place: Place, name: string, bytes: Uint8Array | string): Promise<string> {
  const path = join(place.dir, name);
  await Deno.writeFile(path, typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes);
  return path;
}

/** `capture` on the Llama fixture with the prompt file at `path`. */
async function captureWith(place: Place, path: string, extra: string[] = []): Promise<[string, string[]]> {
  return ["capture.ts", [
    ...["--model", await ensureFixtureModel("tiny-llama-chat"), "--prompts", path, "--layers", "1"],
    ...["--device", "cpu", "--out", join(place.out, "capture.safetensors"), ...extra],
  ]];
}

/** Bytes of raw float32 NaNs, to overwrite a whole weight file with. */
async function nanFill(path: string): Promise<void> {
  const size = (await Deno.stat(path)).size;
  await Deno.writeFile(path, new Uint8Array(new Float32Array(size / 4).fill(NaN).buffer));
}

/** Demo prompts for the full-disk rows: two, short. */
const FULL_DISK_FLAGS = ["--n", "2", "--device", "cpu"];

const CASES: Case[] = [
  // Finite numbers at the boundaries.
  {
    name: "NaN in an F32 checkpoint tensor referenced in place",
    run: async (place) => {
      const model = await copyFixture("tiny-llama-chat", place.dir);
      await poke(join(model, "model.safetensors"), "model.layers.1.mlp.down_proj.weight", 37, f32(NaN));
      return capture(place, model);
    },
    error:
      /model\.safetensors: tensor model\.layers\.1\.mlp\.down_proj\.weight holds NaN at index 37 of \d+: .*download it again/,
  },
  {
    name: "+Infinity in an F32 checkpoint tensor",
    run: async (place) => {
      const model = await copyFixture("tiny-llama-chat", place.dir);
      await poke(join(model, "model.safetensors"), "model.embed_tokens.weight", 5, f32(Infinity));
      return capture(place, model);
    },
    error: /model\.safetensors: tensor model\.embed_tokens\.weight holds Infinity at index 5 of /,
  },
  {
    name: "NaN in a BF16 checkpoint tensor, converted to f32",
    run: async (place) => {
      const model = await copyFixture("tiny-gemma2-chat", place.dir);
      const shard = "model-00002-of-00002.safetensors";
      const tensor = Object.keys((await openSafetensors(join(model, shard))).tensors).find((t) =>
        t.startsWith("model.layers.")
      )!;
      await poke(join(model, shard), tensor, 3, BF16_NAN);
      return capture(place, model);
    },
    error: /model-00002-of-00002\.safetensors: tensor model\.layers\.\S+ holds NaN at index 3 of \d+: /,
  },
  {
    name: "+Infinity in a BF16 checkpoint tensor, converted to f32",
    run: async (place) => {
      const model = await copyFixture("tiny-gemma2-chat", place.dir);
      await poke(join(model, "model-00001-of-00002.safetensors"), "model.embed_tokens.weight", 0, BF16_INF);
      return capture(place, model);
    },
    error: /model-00001-of-00002\.safetensors: tensor model\.embed_tokens\.weight holds Infinity at index 0 of /,
  },
  {
    name: "an SAE with a NaN threshold",
    run: async (place) => {
      const sae = await copyFixture("tiny-llama-sae-saelens", place.dir, ensureFixtureSae);
      await poke(join(sae, "sae_weights.safetensors"), "threshold", 2, f32(NaN));
      return ["diff.ts", [
        ...[
          "--base",
          await ensureFixtureModel("tiny-llama-base"),
          "--chat",
          await ensureFixtureModel("tiny-llama-chat"),
        ],
        ...["--sae", sae, "--layer", "2", "--n", "2", "--device", "cpu", "--out-dir", place.out],
      ]];
    },
    error: /sae_weights\.safetensors: tensor threshold holds NaN at index 2 of \d+: /,
    cachesMayHold: ["checkpoint", "rewritten"],
  },
  {
    name: "a crosscoder with a NaN encoder weight",
    run: async (place) => {
      const cc = await copyFixture("tiny-llama-crosscoder-L2-k4", place.dir, ensureFixtureCrosscoder);
      await poke(join(cc, "model.safetensors"), "encoder.weight", 11, f32(NaN));
      return ["crosscoder.ts", [
        ...[
          "--base",
          await ensureFixtureModel("tiny-llama-base"),
          "--chat",
          await ensureFixtureModel("tiny-llama-chat"),
        ],
        ...["--crosscoder", cc, "--n", "2", "--device", "cpu", "--out-dir", place.out],
      ]];
    },
    error: /model\.safetensors: tensor encoder weight holds NaN at index \d+ of \d+: /,
    cachesMayHold: ["checkpoint", "rewritten"],
  },
  {
    name: "a steering vector with an infinite value",
    run: async (place) => {
      const vector = join(place.dir, "vector.json");
      await Deno.writeTextFile(vector, `[${Array.from({ length: 48 }, (_, i) => (i === 9 ? "1e999" : "0.5")).join()}]`);
      return ["steer.ts", [
        ...["--model", await ensureFixtureModel("tiny-gemma2-chat"), "--vector", vector, "--layer", "1"],
        ...["--prompts", await prompts(place.dir), "--mag", "3", "--max-new-tokens", "2"],
        ...["--device", "cpu", "--out-dir", place.out],
      ]];
    },
    error: /vector\.json: tensor vector holds Infinity at index 9 of 48: use a vector of finite numbers/,
    cachesMayHold: ["checkpoint", "rewritten"],
  },
  {
    name: "a steering vector file that is not JSON",
    run: async (place) => {
      const vector = join(place.dir, "vector.json");
      await Deno.writeTextFile(vector, "[0.5, 0.25,");
      return ["steer.ts", [
        ...["--model", await ensureFixtureModel("tiny-gemma2-chat"), "--vector", vector, "--layer", "1"],
        ...["--prompts", await prompts(place.dir), "--mag", "3", "--device", "cpu", "--out-dir", place.out],
      ]];
    },
    error: /vector\.json is not valid JSON \(.*\): expected an array of numbers/,
    cachesMayHold: ["checkpoint", "rewritten"],
  },
  {
    name: "NaN weights in an ONNX export, in diff",
    run: async (place) => {
      const base = await copyFixture("tiny-llama-base-optimum", place.dir);
      await nanFill(join(base, "onnx", "model.onnx_data"));
      return ["diff.ts", [
        ...["--base", base, "--chat", await ensureFixtureModel("tiny-llama-chat-optimum")],
        ...["--sae", await ensureFixtureSae("tiny-llama-sae-saelens"), "--layer", "2", "--n", "2"],
        ...["--device", "cpu", "--out-dir", place.out],
      ]];
    },
    error:
      /the base model \S+tiny-llama-base-optimum gives NaN or infinite residuals at layer 2: its weights hold non-finite values .*--dtype fp32/,
    cachesMayHold: ["checkpoint", "rewritten"],
  },
  // Full disks: the output folder has no byte left.
  {
    name: "a full disk under capture's output",
    run: async (place) => capture(place, await ensureFixtureModel("tiny-llama-chat")),
    error: /no space left on device in \S+\/out: writing capture\.safetensors needed [\d.]+ K?B; free some space/,
    cachesMayHold: ["checkpoint", "rewritten"],
    fullDisk: true,
  },
  {
    name: "a full disk under diff's output",
    run: (place) => Promise.resolve(["diff.ts", [...FULL_DISK_FLAGS, "--out-dir", place.out]] as [string, string[]]),
    error: /no space left on device in \S+\/out: writing \S+ needed [\d.]+ [KM]?B; free some space/,
    cachesMayHold: ["checkpoint", "rewritten"],
    fullDisk: true,
  },
  {
    name: "a full disk under kl's output",
    run: (place) => Promise.resolve(["kl.ts", [...FULL_DISK_FLAGS, "--out-dir", place.out]] as [string, string[]]),
    error: /no space left on device in \S+\/out: writing \S+ needed [\d.]+ [KM]?B; free some space/,
    cachesMayHold: ["checkpoint", "rewritten"],
    fullDisk: true,
  },
  {
    name: "a full disk under steer's output",
    run: async (place) => ["steer.ts", [
      ...["--prompts", await prompts(place.dir), "--max-new-tokens", "2", "--device", "cpu", "--out-dir", place.out],
    ]],
    error: /no space left on device in \S+\/out: writing \S+ needed [\d.]+ [KM]?B; free some space/,
    cachesMayHold: ["checkpoint", "rewritten"],
    fullDisk: true,
  },
  // Unreadable JSON the user brings.
  {
    name: "a model.safetensors.index.json that is not JSON",
    run: async (place) => {
      const model = await copyFixture("tiny-gemma2-chat", place.dir);
      await Deno.writeTextFile(join(model, "model.safetensors.index.json"), '{"weight_map": ');
      return capture(place, model);
    },
    error: /^error: \S+\/tiny-gemma2-chat\/model\.safetensors\.index\.json is not valid JSON \(/,
  },
  {
    name: "a tokenizer.json that is not JSON, in a checkpoint folder",
    run: async (place) => {
      const model = await copyFixture("tiny-gemma2-chat", place.dir);
      await Deno.writeTextFile(join(model, "tokenizer.json"), '{"model": garbage');
      return capture(place, model);
    },
    // The user's file, not the cache's link to it.
    error: /^error: \S+bad-input-\w+\/tiny-gemma2-chat\/tokenizer\.json is not valid JSON \(/,
  },
  // Strict readers: safetensors headers.
  {
    name: "a safetensors header whose tensors overlap (same byte count)",
    run: async (place) => {
      const model = await copyFixture("tiny-llama-chat", place.dir);
      await editHeader(join(model, "model.safetensors"), (h) => {
        h["model.layers.0.post_attention_layernorm.weight"].data_offsets = [
          ...h["model.layers.0.input_layernorm.weight"].data_offsets,
        ];
      });
      return capture(place, model);
    },
    error:
      /model\.safetensors is not a valid safetensors file \(tensor \S+ overlaps the bytes of another tensor\): download or save it again/,
  },
  {
    name: "a safetensors file with bytes that belong to no tensor",
    run: async (place) => {
      const model = await copyFixture("tiny-llama-chat", place.dir);
      await editHeader(join(model, "model.safetensors"), () => {}, new Uint8Array(16));
      return capture(place, model);
    },
    error: /model\.safetensors is not a valid safetensors file \(16 bytes after the last tensor belong to no tensor\)/,
  },
  {
    name: "a safetensors tensor whose dtype × shape is not its byte count",
    run: async (place) => {
      const model = await copyFixture("tiny-llama-chat", place.dir);
      await editHeader(join(model, "model.safetensors"), (h) => {
        h["model.norm.weight"].shape = [65];
      });
      return capture(place, model);
    },
    error:
      /model\.safetensors is not a valid safetensors file \(tensor model\.norm\.weight spans 256 bytes but F32 \[65\] needs 260\)/,
  },
  {
    name: "a truncated safetensors file",
    run: async (place) => {
      const model = await copyFixture("tiny-llama-chat", place.dir);
      const path = join(model, "model.safetensors");
      await Deno.truncate(path, (await Deno.stat(path)).size - 100);
      return capture(place, model);
    },
    error: /model\.safetensors is not a valid safetensors file \(.*truncated\)/,
  },
  // Every tensor accounted for by config.json.
  {
    name: "a config saying 2 layers for 4-layer weights",
    run: async (place) => {
      const model = await copyFixture("tiny-llama-chat", place.dir);
      const config = JSON.parse(await Deno.readTextFile(join(model, "config.json")));
      await Deno.writeTextFile(join(model, "config.json"), JSON.stringify({ ...config, num_hidden_layers: 2 }));
      return capture(place, model);
    },
    error:
      /tiny-llama-chat holds \d+ tensors config\.json does not account for \(model\.layers\.2\..*num_hidden_layers 2/,
  },
  // Prompt files.
  {
    name: "a binary prompt file",
    run: async (place) =>
      captureWith(
        place,
        await promptFile(
          place,
          "prompts.txt",
          await Deno.readFile(join(await ensureFixtureModel("tiny-llama-chat"), "model.safetensors")),
        ),
      ),
    error: /prompts\.txt is not a text file \(a NUL byte at offset \d+\)/,
  },
  {
    name: "a prompt file with invalid UTF-8 on line 2",
    run: async (place) =>
      captureWith(
        place,
        await promptFile(place, "prompts.txt", Uint8Array.of(...new TextEncoder().encode("Hello\nCaf"), 0xe9, 0x0a)),
      ),
    error: /prompts\.txt line 2 is not valid UTF-8: save the file as UTF-8/,
  },
  {
    name: "JSONL records without a prompt field",
    run: async (place) =>
      captureWith(place, await promptFile(place, "prompts.jsonl", '{"prompt": "Hi"}\n{"q": "x"}\n{"query": "y"}\n')),
    error: /2 of 3 records in \S+prompts\.jsonl have no prompt \(first: line 2;.*--skip-bad-records/,
  },
  {
    name: "a JSONL line that is not JSON",
    run: async (place) =>
      captureWith(place, await promptFile(place, "prompts.jsonl", '{"prompt": "Hi"}\n{"prompt": \n')),
    error: /prompts\.jsonl line 2 is not JSON/,
  },
  {
    name: "a CSV without a prompt column",
    run: async (place) => captureWith(place, await promptFile(place, "prompts.csv", "id,body\n1,Hello there\n")),
    error: /prompts\.csv has no prompt column \(its columns: id, body\): name one prompt, text/,
  },
  // Numeric flags.
  {
    name: "bench --reps abc",
    run: () => Promise.resolve(["bench.ts", ["--reps", "abc", "--only", "cpu-encode"]]),
    error: /--reps must be a positive integer, got "abc"/,
  },
  {
    name: "diff --seed abc",
    run: (place) =>
      Promise.resolve(["diff.ts", ["--seed", "abc", "--device", "cpu", "--out-dir", place.out]] as [string, string[]]),
    error: /--seed must be a non-negative integer, got "abc"/,
  },
  {
    name: "kl --seed 1.5",
    run: (place) =>
      Promise.resolve(["kl.ts", ["--seed", "1.5", "--device", "cpu", "--out-dir", place.out]] as [string, string[]]),
    error: /--seed must be a non-negative integer, got "1\.5"/,
  },
  {
    name: "diff --layer abc",
    run: (place) =>
      Promise.resolve(["diff.ts", ["--layer", "abc", "--device", "cpu", "--out-dir", place.out]] as [string, string[]]),
    error: /--layer must be a non-negative integer, got "abc"/,
  },
  {
    name: "steer --layer x",
    run: (place) =>
      Promise.resolve(["steer.ts", ["--layer", "x", "--device", "cpu", "--out-dir", place.out]] as [string, string[]]),
    error: /--layer must be a non-negative integer, got "x"/,
    cachesMayHold: ["checkpoint"],
  },
];

/** Complete entries (named by a hex key, with content) and leftover temporary folders under `root`. */
async function cacheLeftovers(root: string): Promise<string[]> {
  const names = await Array.fromAsync(Deno.readDir(root)).catch(() => [] as Deno.DirEntry[]);
  const out: string[] = [];
  for (const entry of names) {
    if (entry.name === "shared") out.push(...(await cacheLeftovers(join(root, entry.name))).map((n) => `shared/${n}`));
    else out.push(entry.name);
  }
  return out;
}

/** Whether this process may mount a tmpfs (the full-disk rows need it). */
const CAN_MOUNT = Deno.build.os === "linux" && Deno.uid() === 0;

/** Mounts a 256 KiB tmpfs at `dir` and fills it; returns the filler's name and how to unmount. */
async function fullDisk(dir: string): Promise<{ filler: string; release: () => Promise<void> }> {
  await Deno.mkdir(dir, { recursive: true });
  const mount = await new Deno.Command("mount", { args: ["-t", "tmpfs", "-o", "size=256k", "tmpfs", dir] }).output();
  if (mount.code) throw new Error(`mount: ${new TextDecoder().decode(mount.stderr)}`);
  const filler = "filler.bin";
  await Deno.writeFile(join(dir, filler), new Uint8Array(1 << 20)).catch(() => {}); // ENOSPC once full
  return {
    filler,
    release: async () => {
      await new Deno.Command("umount", { args: [dir] }).output();
    },
  };
}

for (const c of CASES) {
  Deno.test({
    name: `bad input: ${c.name} → one line, exit 1, nothing left behind`,
    ignore: c.fullDisk && !CAN_MOUNT,
  }, async () => {
    const dir = await tempDir("bad-input-");
    const place: Place = {
      dir,
      out: join(dir, "out"),
      env: {
        MODEL_DIFF_CHECKPOINT_CACHE: join(dir, "cache", "checkpoints"),
        MODEL_DIFF_CACHE: join(dir, "cache", "rewritten"),
        MODEL_DIFF_FILE_MEMO: join(dir, "cache", "file-memo"),
      },
    };
    const [script, args] = await c.run(place);
    const disk = c.fullDisk ? await fullDisk(place.out) : undefined;
    let result;
    let outputs: string[];
    try {
      result = await runScript(script, args, place.env);
      outputs = (await Array.fromAsync(Deno.readDir(place.out)).catch(() => [])).map((e) => e.name)
        .filter((name) => name !== disk?.filler);
    } finally {
      await disk?.release();
    }
    // Progress lines may come first (a build that started before the bad input was met); the error is
    // one line, the last, with no stack trace anywhere.
    const lines = meaningfulLines(result.stderr);
    const errors = lines.filter((line) => /^(error|internal error):|^\s+at /.test(line));
    assertEquals(errors.length, 1, `one error line on stderr, got:\n${result.stderr}`);
    assertEquals(lines.at(-1), errors[0], "the error line is the last");
    assertMatch(errors[0], /^error: /);
    assertMatch(errors[0], c.error);
    assertEquals(result.code, 1, "a user error's exit code");
    assertEquals(outputs, [], "no output written");
    const roots = { checkpoint: place.env.MODEL_DIFF_CHECKPOINT_CACHE, rewritten: place.env.MODEL_DIFF_CACHE };
    for (const [kind, root] of Object.entries(roots)) {
      const left = await cacheLeftovers(root);
      assert(!left.some((n) => n.endsWith(".tmp")), `no temporary build folder left in the ${kind} cache: ${left}`);
      if (!c.cachesMayHold?.includes(kind as "checkpoint")) assertEquals(left, [], `nothing in the ${kind} cache`);
    }
  });
}

Deno.test("bad input: a BF16 value beyond fp16's range, built at fp16 → one line naming the file, tensor and index, no cache entry", async () => {
  const dir = await tempDir("bad-input-");
  const model = await copyFixture("tiny-gemma2-chat", dir);
  // bfloat16 0x4974 is 999424, finite but beyond fp16's ±65504.
  await poke(
    join(model, "model-00001-of-00002.safetensors"),
    "model.embed_tokens.weight",
    4,
    Uint8Array.of(0x74, 0x49),
  );
  const cache = join(dir, "checkpoints");
  // The fp16 graph runs on WebGPU only, so its build is called here directly (it needs no adapter).
  const previous = Deno.env.get("MODEL_DIFF_CHECKPOINT_CACHE");
  Deno.env.set("MODEL_DIFF_CHECKPOINT_CACHE", cache);
  try {
    const error = await modelDirFromCheckpoint(model, { dtype: "fp16" }).then(() => undefined, (e) => e);
    assert(error instanceof UserError, `a UserError, got ${error}`);
    assertMatch(
      error.message,
      /model-00001-of-00002\.safetensors: tensor model\.embed_tokens\.weight holds 999424 at index 4, beyond fp16's range .*--dtype fp32/,
    );
    assertEquals(await Array.fromAsync(Deno.readDir(cache)), [], "nothing left in the cache");
  } finally {
    if (previous === undefined) Deno.env.delete("MODEL_DIFF_CHECKPOINT_CACHE");
    else Deno.env.set("MODEL_DIFF_CHECKPOINT_CACHE", previous);
  }
});

Deno.test("--skip-bad-records leaves out records without a prompt and says how many", async () => {
  const dir = await tempDir("skip-");
  const path = join(dir, "prompts.jsonl");
  await Deno.writeTextFile(path, '{"prompt": "Who are you?"}\n{"q": "x"}\n{"text": "Name a river."}\n');
  const out = join(dir, "capture.safetensors");
  const result = await runScript("capture.ts", [
    ...["--model", await ensureFixtureModel("tiny-llama-chat"), "--prompts", path, "--layers", "1"],
    ...["--device", "cpu", "--out", out, "--skip-bad-records"],
  ]);
  assertEquals(result.code, 0, result.stderr);
  assertMatch(result.stdout, /skipped 1 of 3 records in \S+prompts\.jsonl without a prompt/);
  const metadata = JSON.parse((await openSafetensors(out)).metadata.metadata);
  assertEquals(metadata.prompts.map((p: { prompt: string }) => p.prompt), ["Who are you?", "Name a river."]);
});

Deno.test("diff --resume with nothing to resume from says so in one line per model and starts from the first prompt", async () => {
  // Decided: not refused. The base model's checkpoint is removed once its statistics are written, so a
  // run killed during the chat model has none for the base: refusing would make that rerun fail.
  const dir = await tempDir("resume-");
  const out = join(dir, "out");
  const result = await runScript("diff.ts", ["--n", "2", "--device", "cpu", "--out-dir", out, "--resume"], {
    MODEL_DIFF_CHECKPOINT_CACHE: join(dir, "cache", "checkpoints"),
    MODEL_DIFF_CACHE: join(dir, "cache", "rewritten"),
  });
  assertEquals(result.code, 0, result.stderr);
  const said = `${result.stdout}\n${result.stderr}`.split("\n").filter((line) => line.startsWith("--resume:"));
  assertEquals(said, [
    `--resume: no checkpoint at ${
      join(out, "checkpoint_base.safetensors")
    }, so this model starts from the first prompt`,
    `--resume: no checkpoint at ${
      join(out, "checkpoint_chat.safetensors")
    }, so this model starts from the first prompt`,
  ]);
});
