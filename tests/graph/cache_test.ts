import { assert, assertEquals } from "../assert.ts";
import { join } from "node:path";
import { ensureFixtureModel } from "../../lib/fixtures/build.ts";
import { rewrittenModel } from "../../lib/graph/cache.ts";
import { externalDataLocations, readModel } from "../../lib/graph/onnx.ts";
import { tempDir } from "../temp.ts";

Deno.test("rewritten models are cached by graph hash and spec; cut graphs get a compact weight file", async () => {
  const cache = await tempDir("rewrite-cache-");
  Deno.env.set("MODEL_DIFF_CACHE", cache);
  try {
    const source = await ensureFixtureModel("tiny-llama-chat");
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
