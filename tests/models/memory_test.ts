/**
 * The GPU memory a model needs, from config.json alone: parameter counts checked against the counts
 * Meta publishes for Llama 3.1 8B and 405B (written out here, not computed by the code under test),
 * bytes at each graph dtype, the largest tensor against the device's buffer limits, and the one line
 * that refuses a model too large, read from config.json without touching any other file.
 */

import { assert, assertEquals, assertMatch } from "../assert.ts";
import { UserError } from "../../lib/core/errors.ts";
import type { FileSource } from "../../lib/core/file_source.ts";
import { decoderConfigFromHf } from "../../lib/models/config.ts";
import {
  checkModelFitsGpu,
  estimateModelMemory,
  formatBinaryBytes,
  formatParameters,
  gpuMemoryProblem,
} from "../../lib/models/memory.ts";

/** meta-llama/Llama-3.1-8B's config.json fields the estimate reads. */
const LLAMA31_8B: Record<string, unknown> = {
  model_type: "llama",
  hidden_act: "silu",
  hidden_size: 4096,
  intermediate_size: 14336,
  num_attention_heads: 32,
  num_hidden_layers: 32,
  num_key_value_heads: 8,
  rms_norm_eps: 1e-5,
  rope_theta: 500000,
  tie_word_embeddings: false,
  vocab_size: 128256,
};

/** meta-llama/Llama-3.1-405B's. */
const LLAMA31_405B = {
  ...LLAMA31_8B,
  hidden_size: 16384,
  intermediate_size: 53248,
  num_attention_heads: 128,
  num_hidden_layers: 126,
};

/** A FileSource holding just config.json; reading anything else fails the test. */
function configOnly(config: unknown): FileSource & { reads: string[] } {
  const bytes = new TextEncoder().encode(typeof config === "string" ? config : JSON.stringify(config));
  const reads: string[] = [];
  const only = (path: string) => {
    reads.push(path);
    if (path !== "config.json") throw new Error(`read ${path}`);
  };
  return {
    reads,
    label: (path) => `huge/${path}`,
    size: (path) => Promise.resolve(path === "config.json" ? bytes.length : 1 << 30),
    read(path, offset, length) {
      only(path);
      return Promise.resolve(bytes.subarray(offset, offset + length));
    },
    readAll(path) {
      only(path);
      return Promise.resolve(bytes);
    },
  };
}

/** The UserError `promise` rejects with. */
async function userError(promise: Promise<unknown>): Promise<UserError> {
  const error = await promise.then(() => undefined, (e) => e);
  assert(error instanceof UserError, `expected a UserError, got ${error}`);
  return error;
}

const BIG_GPU = { maxBufferSize: 2 ** 32, maxStorageBufferBindingSize: 2 ** 32 - 4 };

Deno.test("parameter counts are the published ones; bytes follow the graph dtype; the largest tensor is named", () => {
  const small = estimateModelMemory(decoderConfigFromHf(LLAMA31_8B, "c"), "fp16");
  assertEquals(small.parameters, 8_030_261_248);
  assertEquals(small.bytes, 2 * 8_030_261_248);
  // embed_tokens and lm_head have the same shape; the first one met is named.
  assertEquals(small.largest, { name: "model.embed_tokens.weight", shape: [128256, 4096], bytes: 128256 * 4096 * 2 });
  const large = estimateModelMemory(decoderConfigFromHf(LLAMA31_405B, "c"), "fp32");
  assertEquals(large.parameters, 405_853_388_800);
  assertEquals(large.bytes, 4 * 405_853_388_800);
  // Tied embeddings are held once.
  const tied = estimateModelMemory(decoderConfigFromHf({ ...LLAMA31_8B, tie_word_embeddings: true }, "c"), "fp32");
  assertEquals(tied.parameters, 8_030_261_248 - 128256 * 4096);
});

Deno.test("a tensor beyond either buffer limit is refused in one line naming the model, the estimate and the limit", () => {
  const memory = estimateModelMemory(decoderConfigFromHf(LLAMA31_8B, "c"), "fp32");
  assertEquals(gpuMemoryProblem("the base model m", memory, BIG_GPU), undefined);
  assertEquals(
    gpuMemoryProblem("the base model m", memory, { maxBufferSize: 2 ** 32, maxStorageBufferBindingSize: 2 ** 27 }),
    "the base model m needs about 29.9 GiB of GPU memory at fp32 (8B parameters), and its largest tensor, " +
      "model.embed_tokens.weight [128256, 4096] (2 GiB), is more than this GPU holds in one buffer " +
      "(maxStorageBufferBindingSize 128 MiB): use a smaller model or a GPU with larger limits",
  );
  const line = gpuMemoryProblem("the chat model m", memory, {
    maxBufferSize: 2 ** 28,
    maxStorageBufferBindingSize: 2 ** 30,
  });
  assertMatch(line!, /\(maxBufferSize 256 MiB\)/);
  // Exactly at the limit fits.
  const exact = { maxBufferSize: memory.largest.bytes, maxStorageBufferBindingSize: memory.largest.bytes };
  assertEquals(gpuMemoryProblem("m", memory, exact), undefined);
  assertEquals(formatBinaryBytes(512), "512 B");
  assertEquals(formatBinaryBytes(1.5 * 2 ** 40), "1.5 TiB");
  assertEquals(formatParameters(405_853_388_800), "405.9B");
  assertEquals(formatParameters(16_600_000), "16.6M");
});

Deno.test("checkModelFitsGpu reads config.json alone, and a config that is not JSON is the core's line", async () => {
  const files = configOnly(LLAMA31_405B);
  const error = await userError(checkModelFitsGpu(files, "the base model huge", "fp32", BIG_GPU));
  assertEquals(
    error.message,
    "the base model huge needs about 1.5 TiB of GPU memory at fp32 (405.9B parameters), and its largest tensor, " +
      "model.embed_tokens.weight [128256, 16384] (7.8 GiB), is more than this GPU holds in one buffer " +
      "(maxStorageBufferBindingSize 4 GiB): use a smaller model or a GPU with larger limits",
  );
  assertEquals(files.reads, ["config.json"]);
  const fits = await checkModelFitsGpu(configOnly(LLAMA31_8B), "m", "fp16", BIG_GPU);
  assertEquals(fits.parameters, 8_030_261_248);
  const json = await userError(checkModelFitsGpu(configOnly("{not json"), "m", "fp32", BIG_GPU));
  assertMatch(json.message, /^huge\/config\.json is not valid JSON \(/);
});
