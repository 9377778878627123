import { assert, assertEquals } from "../assert.ts";
import { join } from "node:path";
import { ensureFixtureModel } from "../../lib/fixtures/build.ts";
import { listCache } from "../../lib/io/cache_store.ts";
import {
  rewriteCacheRoot,
  rewriteCodeDigest,
  rewriteKey,
  rewrittenModel,
  SHARED_DATA,
} from "../../lib/models/rewritten.ts";
import { modelDirFromCheckpoint } from "../../lib/models/from_checkpoint.ts";
import { modelIdentity } from "../../lib/models/identity.ts";
import { externalDataLocations } from "../../lib/graph/onnx.ts";
import { readModel } from "../../lib/graph/onnx_file.ts";
import { tempDir } from "../temp.ts";

/** Every cache root in a fresh temp dir for the duration of `body`. */
async function withCache(body: () => Promise<void>): Promise<void> {
  const root = await tempDir("rewrite-cache-");
  Deno.env.set("MODEL_DIFF_CACHE", join(root, "rewritten"));
  Deno.env.set("MODEL_DIFF_CHECKPOINT_CACHE", join(root, "checkpoints"));
  try {
    await body();
  } finally {
    Deno.env.delete("MODEL_DIFF_CACHE");
    Deno.env.delete("MODEL_DIFF_CHECKPOINT_CACHE");
  }
}

/** Identity of the file at `path` on disk (device and inode): equal for two hard links to the same bytes. */
async function inode(path: string): Promise<string> {
  const info = await Deno.stat(path);
  return `${info.dev}:${info.ino}`;
}

/** Real disk usage of the files of `dirs`, each inode counted once (`du`'s rule), excluding `except` inodes. */
async function diskUsage(dirs: string[], except = new Set<string>()): Promise<number> {
  const seen = new Set<string>(except);
  let bytes = 0;
  const walk = async (dir: string) => {
    for await (const item of Deno.readDir(dir)) {
      const path = join(dir, item.name);
      if (item.isDirectory) await walk(path);
      else if (item.isFile && !seen.has(await inode(path))) {
        seen.add(await inode(path));
        bytes += (await Deno.stat(path)).blocks! * 512;
      }
    }
  };
  for (const dir of dirs) await walk(dir).catch(() => {});
  return bytes;
}

const CAPTURE_CUT = (layer: number) => ({ capture: [layer], cut: true, steering: [] });
const STEER_AT = (layer: number) => ({
  capture: [],
  cut: false,
  steering: [{ layer, kind: "addition" as const, positions: "all" as const }],
});

Deno.test("rewrites are cached by model identity and spec and link the source's weight files at their offsets", async () => {
  await withCache(async () => {
    const source = await ensureFixtureModel("tiny-llama-chat-optimum");
    const spec = CAPTURE_CUT(0);
    const first = await rewrittenModel(source, spec);
    const stamp = await Deno.stat(join(first.dir, "rewrite.json"));
    const again = await rewrittenModel(source, spec);
    assertEquals(again.dir, first.dir);
    assertEquals((await Deno.stat(join(again.dir, "rewrite.json"))).mtime, stamp.mtime, "second call reuses the cache");
    const other = await rewrittenModel(source, { ...spec, capture: [1] });
    assert(other.dir !== first.dir, "another spec, another directory");
    const sourceData = join(source, "onnx", "model.onnx_data");
    for (const dir of [first.dir, other.dir, (await rewrittenModel(source, STEER_AT(0))).dir]) {
      assertEquals(await inode(join(dir, "onnx", "model.onnx_data")), await inode(sourceData), "the same bytes");
    }
    // The cut graph references a subset of the source's tensors, each where the source has it.
    const offsets = (model: Awaited<ReturnType<typeof readModel>>) =>
      new Map(model.graph.initializer.map((t) => [t.name, JSON.stringify(t.externalData)]));
    const sourceOffsets = offsets(await readModel(join(source, "onnx", "model.onnx")));
    const cut = await readModel(join(first.dir, "onnx", "model.onnx"));
    assertEquals(externalDataLocations(cut), ["model.onnx_data"]);
    const cutOffsets = offsets(cut);
    assert(cutOffsets.size < sourceOffsets.size, "a graph cut after layer 0 keeps fewer tensors");
    for (const [name, place] of cutOffsets) assertEquals(place, sourceOffsets.get(name), String(name));
    for (const file of ["config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"]) {
      assert((await Deno.stat(join(first.dir, file))).isFile, file);
    }
  });
});

Deno.test("a graph with inline weights: moved once into a shared entry that every rewrite links", async () => {
  await withCache(async () => {
    const source = await ensureFixtureModel("tiny-gemma2-chat-optimum");
    const graphBytes = (await Deno.stat(join(source, "onnx", "model.onnx"))).size;
    const capture = await rewrittenModel(source, CAPTURE_CUT(2));
    const shared = join(rewriteCacheRoot(), "shared");
    const [entry] = await Array.fromAsync(Deno.readDir(shared));
    const data = join(shared, entry.name, "onnx", SHARED_DATA);
    const afterFirst = await diskUsage([rewriteCacheRoot()], new Set([await inode(join(source, "tokenizer.json"))]));
    const steer = await rewrittenModel(source, STEER_AT(2));
    for (const dir of [capture.dir, steer.dir]) {
      assertEquals(await inode(join(dir, "onnx", SHARED_DATA)), await inode(data));
      assert((await Deno.stat(join(dir, "onnx", "model.onnx"))).size < graphBytes / 20, "the graph lost its weights");
    }
    const total = await diskUsage([rewriteCacheRoot()], new Set([await inode(join(source, "tokenizer.json"))]));
    assert(afterFirst < graphBytes * 1.05, `the first rewrite adds the weights once: ${afterFirst} of ${graphBytes}`);
    assert(total - afterFirst < graphBytes * 0.01, `the second adds a graph: ${total - afterFirst} bytes`);
    assertEquals((await Array.fromAsync(Deno.readDir(shared))).length, 1, "one shared entry");
  });
});

Deno.test("capture cut at layer L and steering at layer L of one checkpoint add < 10 % of its size to the cache", async () => {
  await withCache(async () => {
    // A BF16 checkpoint: its conversion is an entry of its own, and both rewrites must link it.
    const checkpoint = await ensureFixtureModel("tiny-gemma2-chat");
    let modelBytes = 0;
    for await (const item of Deno.readDir(checkpoint)) {
      if (item.name.endsWith(".safetensors")) modelBytes += (await Deno.stat(join(checkpoint, item.name))).size;
    }
    const built = await modelDirFromCheckpoint(checkpoint);
    const before = await listCache();
    const capture = await rewrittenModel(built, CAPTURE_CUT(2));
    const steer = await rewrittenModel(built, STEER_AT(2));
    const after = await listCache();
    const added = after.totalBytes - before.totalBytes;
    // The store's figure against an independent count of the cache's files (the checkpoint's own files excluded).
    const fixtureInodes = new Set<string>();
    for await (const item of Deno.readDir(checkpoint)) fixtureInodes.add(await inode(join(checkpoint, item.name)));
    const counted = await diskUsage([rewriteCacheRoot(), join(built, "..")], fixtureInodes);
    assertEquals(after.totalBytes, counted, "the store's total is the disk usage of the cache's own inodes");
    console.log(
      `two rewrites (capture cut at 2, steering at 2) added ${added} bytes = ${
        (100 * added / modelBytes).toFixed(2)
      } % of the checkpoint's ${modelBytes} bytes of safetensors`,
    );
    assert(added < modelBytes * 0.1, `${added} bytes added for a ${modelBytes}-byte model`);
    assertEquals(after.entries.length, 3);
    for (const dir of [capture.dir, steer.dir]) {
      assertEquals(
        await inode(join(dir, "onnx", "converted_f32.bin")),
        await inode(join(built, "onnx", "converted_f32.bin")),
      );
    }
  });
});

Deno.test("two exports with identical model.onnx bytes and different weights get separate cache entries, reused", async () => {
  const cache = await tempDir("rewrite-cache-");
  Deno.env.set("MODEL_DIFF_CACHE", cache);
  try {
    const [base, chat] = await Promise.all(
      ["tiny-llama-base-optimum", "tiny-llama-chat-optimum"].map((n) => ensureFixtureModel(n)),
    );
    const graph = (dir: string) => Deno.readFile(join(dir, "onnx", "model.onnx"));
    const [baseGraph, chatGraph] = await Promise.all([graph(base), graph(chat)]);
    // The premise: as in a large Optimum export, the graphs are the same bytes; only model.onnx_data differs.
    assertEquals(baseGraph.length, chatGraph.length);
    assert(baseGraph.every((byte, i) => byte === chatGraph[i]), "base and chat model.onnx are byte-identical");
    const spec = { capture: [2], cut: true, steering: [] };
    const lines: string[] = [];
    const log = (line: string) => lines.push(line);
    const first = [await rewrittenModel(base, spec, { log }), await rewrittenModel(chat, spec, { log })];
    assert(first[0].dir !== first[1].dir, "different weights, different cache entries");
    assertEquals(lines.length, 2, "both were rewritten once");
    const again = [await rewrittenModel(base, spec, { log }), await rewrittenModel(chat, spec, { log })];
    assertEquals(again.map((r) => r.dir), first.map((r) => r.dir));
    assertEquals(lines.length, 2, "a second run reuses both entries");
  } finally {
    Deno.env.delete("MODEL_DIFF_CACHE");
    await Deno.remove(cache, { recursive: true });
  }
});

Deno.test("a model's identity covers its external weights; the rewrite key covers the rewriting code", async () => {
  const source = await ensureFixtureModel("tiny-llama-chat-optimum");
  const copy = await tempDir("identity-");
  try {
    await Deno.mkdir(join(copy, "onnx"));
    for (const file of ["config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"]) {
      await Deno.copyFile(join(source, file), join(copy, file));
    }
    for (const file of ["model.onnx", "model.onnx_data"]) {
      await Deno.copyFile(join(source, "onnx", file), join(copy, "onnx", file));
    }
    const original = await modelIdentity(source);
    const copied = await modelIdentity(copy);
    assertEquals(copied.content, original.content, "the same content wherever it lies");
    assert(copied.local !== original.local, "but another local identity (another path)");
    // One weight changed in the data file only: the graph is the same bytes.
    const data = await Deno.open(join(copy, "onnx", "model.onnx_data"), { read: true, write: true });
    await data.seek(5000, Deno.SeekMode.Start);
    await data.write(new Uint8Array([0x7f]));
    data.close();
    assert((await modelIdentity(copy)).content !== original.content, "a changed weight changes the identity");

    const spec = { capture: [0], cut: true, steering: [] };
    const code = await rewriteCodeDigest();
    const key = await rewriteKey(original.local, spec, code);
    assertEquals(await rewriteKey(original.local, spec, code), key);
    assert(await rewriteKey(original.local, spec, code + "// another rewrite") !== key, "other code, other key");
    assert(await rewriteKey(copied.local, spec, code) !== key, "other model, other key");
  } finally {
    await Deno.remove(copy, { recursive: true });
  }
});
