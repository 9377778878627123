/**
 * A checkpoint built from its files in memory (what a page does) gives the CLI's graph bytes,
 * converted weights and content identity for the same checkpoint and precision.
 */

import { assertEquals } from "../assert.ts";
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
