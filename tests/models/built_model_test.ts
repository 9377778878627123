/**
 * A checkpoint built from its files in memory (what a page does) gives the CLI's graph bytes,
 * converted weights and content identity for the same checkpoint and precision.
 */

import { assert, assertEquals } from "../assert.ts";
import { join } from "node:path";
import { buildModel } from "../../lib/models/built_model.ts";
import { dirSource } from "../../lib/io/fs_source.ts";
import { ensureFixtureModel } from "../../lib/fixtures/build.ts";
import { modelDirFromCheckpoint } from "../../lib/models/from_checkpoint.ts";
import { modelIdentity } from "../../lib/models/identity.ts";
import type { GraphDtype } from "../../lib/models/decoder_graph.ts";

const CASES: [string, GraphDtype][] = [
  ["tiny-llama31-chat-hf", "fp32"],
  ["tiny-gemma2-base", "fp32"],
  ["tiny-gemma3-hf", "fp16"],
  ["tiny-mistral-hf", "fp16"],
];

for (const [fixture, dtype] of CASES) {
  Deno.test(`${fixture} at ${dtype}: built in memory = the CLI's built directory (graph, converted bytes, identity)`, async () => {
    const dir = await ensureFixtureModel(fixture);
    const built = await buildModel(dirSource(dir), dtype);
    const cli = await modelDirFromCheckpoint(dir, { dtype });
    // protobufjs hands back a Buffer under Deno: compare plain bytes.
    assertEquals(new Uint8Array(built.graph), await Deno.readFile(join(cli, "onnx", "model.onnx")));
    const onDisk = await Deno.readFile(join(cli, "onnx", built.convertedFile)).catch(() => undefined);
    assertEquals(built.converted, onDisk);
    assertEquals(built.identity, (await modelIdentity(cli)).content);
  });
}

/** An in-memory ByteStore. */
function memoryStore() {
  const entries = new Map<string, Uint8Array>();
  return {
    entries,
    get: (key: string) => Promise.resolve(entries.get(key)),
    put: (key: string, bytes: Uint8Array) => Promise.resolve(void entries.set(key, bytes.slice())),
    remove: (key: string) => Promise.resolve(void entries.delete(key)),
    keys: () => Promise.resolve([...entries.keys()]),
    size: () => Promise.resolve([...entries.values()].reduce((n, b) => n + b.length, 0)),
    clear: () => Promise.resolve(entries.clear()),
  };
}

Deno.test("a build cache: the same files (by stamp) and code read back the build without reading the weights; a changed file or version builds again", async () => {
  const dir = await ensureFixtureModel("tiny-gemma2-base");
  let stampOf = (path: string) => `stamp-of-${path}`;
  let weightReads = 0;
  const disk = dirSource(dir);
  const files = {
    ...disk,
    read(path: string, offset: number, length: number) {
      // Headers are read in two small reads; a tensor (or a whole file, to hash it) is a large one.
      if (path.endsWith(".safetensors") && length > 10_000) weightReads++;
      return disk.read(path, offset, length);
    },
    stamp: (path: string) => Promise.resolve(stampOf(path)),
  };
  const store = memoryStore();
  const first = await buildModel(files, "fp32", { cache: { store, version: "v1" } });
  assert(weightReads > 0, "the first build reads the weights");
  assertEquals(store.entries.size, 3, "graph, converted tensors (BF16 → F32) and metadata");
  weightReads = 0;
  const lines: string[] = [];
  const second = await buildModel(files, "fp32", { cache: { store, version: "v1" }, log: (l) => lines.push(l) });
  assertEquals(weightReads, 0, "a cached build reads no weights");
  assertEquals(lines.length, 1);
  assertEquals(
    [second.identity, second.configText, second.convertedFile],
    [first.identity, first.configText, first.convertedFile],
  );
  assertEquals(new Uint8Array(second.graph), new Uint8Array(first.graph));
  assertEquals(second.converted, first.converted);
  await buildModel(files, "fp32", { cache: { store, version: "v2" } });
  assertEquals(store.entries.size, 6, "another code version builds again");
  stampOf = (path) => path.endsWith("model-00001-of-00002.safetensors") ? "touched" : `stamp-of-${path}`;
  weightReads = 0;
  await buildModel(files, "fp32", { cache: { store, version: "v2" } });
  assert(weightReads > 0, "a changed weight file builds again");
  assertEquals(store.entries.size, 9);
});
