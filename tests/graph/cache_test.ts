import { assert, assertEquals } from "../assert.ts";
import { join } from "node:path";
import { ensureFixtureModel } from "../../lib/fixtures/build.ts";
import { rewriteCodeDigest, rewriteKey, rewrittenModel } from "../../lib/graph/cache.ts";
import { modelIdentity } from "../../lib/identity.ts";
import { externalDataLocations, readModel } from "../../lib/graph/onnx.ts";
import { tempDir } from "../temp.ts";

Deno.test("rewritten models are cached by model identity and spec; cut graphs get a compact weight file", async () => {
  const cache = await tempDir("rewrite-cache-");
  Deno.env.set("MODEL_DIFF_CACHE", cache);
  try {
    const source = await ensureFixtureModel("tiny-llama-chat-optimum");
    const spec = { capture: [0], cut: true, steering: [] };
    const first = await rewrittenModel(source, spec);
    const stamp = await Deno.stat(join(first.dir, "rewrite.json"));
    const again = await rewrittenModel(source, spec);
    assertEquals(again.dir, first.dir);
    assertEquals((await Deno.stat(join(again.dir, "rewrite.json"))).mtime, stamp.mtime, "second call reuses the cache");
    const other = await rewrittenModel(source, { ...spec, capture: [1] });
    assert(other.dir !== first.dir, "another spec, another directory");
    const full = await rewrittenModel(source, { capture: [0], cut: false, steering: [] });
    const size = async (dir: string) => (await Deno.stat(join(dir, "onnx", "model.onnx_data"))).size;
    const sourceSize = (await Deno.stat(join(source, "onnx", "model.onnx_data"))).size;
    assertEquals(await size(full.dir), sourceSize, "an uncut graph links the original weights");
    assert(await size(first.dir) < sourceSize * 0.6, "a graph cut after layer 0 keeps only what it needs");
    const model = await readModel(join(first.dir, "onnx", "model.onnx"));
    assertEquals(externalDataLocations(model), ["model.onnx_data"]);
    for (const file of ["config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"]) {
      assert((await Deno.stat(join(first.dir, file))).isFile, file);
    }
  } finally {
    Deno.env.delete("MODEL_DIFF_CACHE");
  }
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
