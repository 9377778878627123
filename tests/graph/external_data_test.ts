/**
 * Graphs handed to onnxruntime-web in memory: a cut graph's weights are read as the ranges it
 * references (packed), each tensor's bytes equal to those at its offset in the linked file on disk.
 */

import { assert, assertBytesEqual, assertEquals } from "../assert.ts";
import { join } from "node:path";
import { ensureFixtureModel } from "../../lib/fixtures/build.ts";
import { rewrittenModel } from "../../lib/models/rewritten.ts";
import { readModelInMemory } from "../../lib/graph/external_data.ts";
import { decodeModel, type onnx } from "../../lib/graph/onnx.ts";
import { readModel } from "../../lib/graph/onnx_file.ts";
import { tempDir } from "../temp.ts";

const place = (t: onnx.ITensorProto) => {
  const get = (key: string) => t.externalData?.find((e) => e.key === key)?.value;
  return { location: get("location")!, offset: Number(get("offset") ?? 0), length: Number(get("length")) };
};

Deno.test("a cut graph's external data is packed to what it references; an uncut one is the file as it is", async () => {
  Deno.env.set("MODEL_DIFF_CACHE", await tempDir("external-data-"));
  try {
    const source = await ensureFixtureModel("tiny-llama-chat-optimum");
    const cut = await rewrittenModel(source, { capture: [0], cut: true, steering: [] });
    const graphPath = join(cut.dir, "onnx", "model.onnx");
    const onDisk = await readModel(graphPath);
    const file = await Deno.readFile(join(cut.dir, "onnx", "model.onnx_data"));
    const loaded = await readModelInMemory(graphPath);
    assertEquals(loaded.externalData.map((e) => e.path), ["model.onnx_data"]);
    const packed = loaded.externalData[0].data;
    assert(packed.length < file.length * 0.6, `${packed.length} of ${file.length} bytes read`);
    const inMemory = new Map(decodeModel(loaded.model, graphPath).graph.initializer.map((t) => [t.name, t]));
    let checked = 0;
    for (const tensor of onDisk.graph.initializer) {
      if (!tensor.externalData?.length) continue;
      const from = place(tensor);
      const to = place(inMemory.get(tensor.name)!);
      assertEquals(to.length, from.length);
      assertBytesEqual(
        packed.subarray(to.offset, to.offset + to.length),
        file.subarray(from.offset, from.offset + from.length),
        tensor.name!,
      );
      checked++;
    }
    assert(checked > 5, `${checked} tensors checked`);

    const full = await readModelInMemory(join(source, "onnx", "model.onnx"));
    assertBytesEqual(full.externalData[0].data, await Deno.readFile(join(source, "onnx", "model.onnx_data")));
    assertBytesEqual(full.model, await Deno.readFile(join(source, "onnx", "model.onnx")), "graph untouched");
  } finally {
    Deno.env.delete("MODEL_DIFF_CACHE");
  }
});
