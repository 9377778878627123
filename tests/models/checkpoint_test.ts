/**
 * Hugging Face checkpoints in, no export step: each family's fixture checkpoint (F32, F16 and BF16;
 * single and sharded) is built into a graph by lib/models and must compute what the independent f64
 * reference computes on the weights as stored, on both runtimes.
 */

import { assert, assertClose, assertEquals, assertMatch } from "../assert.ts";
import { tempDir } from "../temp.ts";
import { join } from "node:path";
import { residuals, vectorAt } from "../../lib/runtime/activations.ts";
import { UserError } from "../../lib/core/errors.ts";
import { ensureFixtureModel } from "../../lib/fixtures/build.ts";
import { referenceForward } from "../../lib/fixtures/reference.ts";
import { generateGreedy } from "../../lib/runtime/generation.ts";
import { openCheckpoint } from "../../lib/models/checkpoint.ts";
import { dirSource } from "../../lib/io/fs_source.ts";
import { bf16Bits } from "../../lib/fixtures/weights.ts";
import { readModelShape, resolveModelDir } from "../../lib/models/hub.ts";
import { encodeSafetensors, type TensorToWrite } from "../../lib/io/safetensors.ts";
import { modelDirFromCheckpoint } from "../../lib/models/from_checkpoint.ts";
import type { GraphDtype } from "../../lib/models/decoder_graph.ts";
import { type Device, DEVICES, loadModel, transformers } from "../../lib/runtime/runtime.ts";
import { argmax, chatIds, fixtureHandle, fixtureReference } from "../helpers.ts";

const CHECKPOINTS = [
  "tiny-llama31-chat-hf",
  "tiny-gemma2-base",
  "tiny-mistral-hf",
  "tiny-qwen2-hf",
  "tiny-qwen3-hf",
  "tiny-gemma3-hf",
];
// Longer than the Mistral fixture's window of 6 and the Gemma 3 one's of 5, so sliding-window attention is exercised.
/** f32 against f64: per element, 1e-4 relative with a 1e-4 floor (values are O(1)). */
const TOLERANCE = { rtol: 1e-4, atol: 1e-4 };
const PROMPT = "Name three rivers in Europe and say which is longest.";

// Every family's chat checkpoint on both runtimes (config.json as transformers 4 saves it); the base
// checkpoints on the CPU, saved as transformers 5 does (rope_parameters, dtype; tiny-gemma2-base above
// on both runtimes). Base differs from chat only in its weights and its config's layout.
const BASES = [
  "tiny-llama-base",
  "tiny-mistral-base-hf",
  "tiny-qwen2-base-hf",
  "tiny-qwen3-base-hf",
  "tiny-gemma3-base-hf",
];
const CASES: [string, Device][] = [
  ...CHECKPOINTS.flatMap((name) => DEVICES.map((device): [string, Device] => [name, device])),
  ...BASES.map((name): [string, Device] => [name, "cpu"]),
];

for (const [name, device] of CASES) {
  {
    Deno.test(`${name} on ${device}: logits, residuals at every layer and greedy tokens equal the f64 reference`, async () => {
      const { config, weights } = fixtureReference(name);
      const layers = Array.from({ length: config.numLayers }, (_, l) => l);
      // One session serves all three checks: the uncut capture graph still has logits and the KV cache.
      const handle = await fixtureHandle(name, device, { capture: layers, cut: false, steering: [] });
      const [ids] = chatIds(handle, [PROMPT]);
      assert(ids.length > 12, "long enough for the sliding window");
      const reference = referenceForward(config, weights, ids, { withLogits: true });

      const captured = await residuals(handle, [ids], layers);
      for (const layer of layers) {
        for (let t = 0; t < ids.length; t++) {
          assertClose(vectorAt(captured, layer, 0, t), reference.residuals[layer + 1][t], {
            ...TOLERANCE,
            label: `layer ${layer} token ${t}`,
          });
        }
      }
      const inputs = {
        input_ids: new transformers.Tensor("int64", BigInt64Array.from(ids, BigInt), [1, ids.length]),
        attention_mask: new transformers.Tensor("int64", new BigInt64Array(ids.length).fill(1n), [1, ids.length]),
      };
      const { logits } = await handle.model(inputs) as { logits: InstanceType<typeof transformers.Tensor> };
      const vocab = config.vocabSize;
      for (const t of [0, ids.length - 1]) {
        const row = (logits.data as Float32Array).subarray(t * vocab, (t + 1) * vocab);
        assertClose(row, reference.logits[t], { ...TOLERANCE, label: `logits at token ${t}` });
      }

      const tokens = await generateGreedy(handle, ids, 4);
      const sequence = [...ids];
      for (let step = 0; step < tokens.length; step++) {
        const next = referenceForward(config, weights, sequence, { withLogits: true, logitsFrom: sequence.length - 1 });
        sequence.push(argmax(next.logits[0]));
      }
      assertEquals(tokens, sequence.slice(ids.length));
    });
  }
}

Deno.test("a multimodal Gemma 3 checkpoint (model_type gemma3) runs as its decoder, under either naming", async () => {
  const temp = await tempDir("gemma3-multimodal-");
  Deno.env.set("MODEL_DIFF_CHECKPOINT_CACHE", join(temp, "cache"));
  try {
    const source = await ensureFixtureModel("tiny-gemma3-hf");
    const { config, weights } = fixtureReference("tiny-gemma3-hf");
    // As google/gemma-3-4b-it: the decoder's config nested, leaving out what equals Gemma3TextConfig's defaults.
    const flat = JSON.parse(await Deno.readTextFile(join(source, "config.json")));
    const { bos_token_id, eos_token_id, pad_token_id, torch_dtype, ...text } = flat;
    for (const key of ["rms_norm_eps", "hidden_activation", "rope_local_base_freq", "tie_word_embeddings"]) {
      delete text[key];
    }
    const nested = {
      architectures: ["Gemma3ForConditionalGeneration"],
      model_type: "gemma3",
      text_config: text,
      vision_config: { hidden_size: 8, model_type: "siglip_vision_model" },
      ...{ bos_token_id, eos_token_id, pad_token_id, torch_dtype },
    };
    const dirs: string[] = [];
    for (const prefix of ["language_model.model.", "model.language_model."]) {
      const dir = join(temp, prefix.replaceAll(".", "-"));
      await Deno.mkdir(dir);
      for (const file of ["tokenizer.json", "tokenizer_config.json", "generation_config.json"]) {
        await Deno.copyFile(join(source, file), join(dir, file));
      }
      await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(nested));
      const tensors: Record<string, TensorToWrite> = {
        // The vision tower and projector are there, and not read.
        "vision_tower.vision_model.post_layernorm.weight": { dtype: "BF16", shape: [8], data: new Uint16Array(8) },
        "multi_modal_projector.mm_input_projection_weight": {
          dtype: "BF16",
          shape: [8, 48],
          data: new Uint16Array(384),
        },
      };
      for (const [name, { data, shape }] of weights) {
        tensors[prefix + name.slice("model.".length)] = { dtype: "BF16", shape, data: bf16Bits(data) };
      }
      await Deno.writeFile(join(dir, "model.safetensors"), encodeSafetensors(tensors));
      dirs.push(dir);
    }
    const flatCheckpoint = await openCheckpoint(dirSource(source));
    for (const dir of dirs) {
      const opened = await openCheckpoint(dirSource(dir));
      assertEquals(opened.config, flatCheckpoint.config);
      assertEquals([...opened.tensors.keys()].sort(), [...flatCheckpoint.tensors.keys()].sort());
    }

    const handle = await loadModel(dirs[0], { device: "cpu" });
    try {
      assertEquals(await readModelShape(await resolveModelDir(dirs[0])), {
        layers: 4,
        dModel: 48,
        modelType: "gemma3_text",
      });
      const [ids] = chatIds(handle, [PROMPT]);
      const inputs = {
        input_ids: new transformers.Tensor("int64", BigInt64Array.from(ids, BigInt), [1, ids.length]),
        attention_mask: new transformers.Tensor("int64", new BigInt64Array(ids.length).fill(1n), [1, ids.length]),
      };
      const { logits } = await handle.model(inputs) as { logits: InstanceType<typeof transformers.Tensor> };
      const last = ids.length - 1;
      const reference = referenceForward(config, weights, ids, { withLogits: true, logitsFrom: last });
      const vocab = config.vocabSize;
      assertClose((logits.data as Float32Array).subarray(last * vocab), reference.logits[0], {
        ...TOLERANCE,
        label: "logits at the last token",
      });
    } finally {
      await handle.dispose();
    }
  } finally {
    Deno.env.delete("MODEL_DIFF_CHECKPOINT_CACHE");
    await Deno.remove(temp, { recursive: true });
  }
});

Deno.test("bad checkpoints: one line each, and nothing half-written in the cache", async () => {
  const temp = await tempDir("bad-checkpoints-");
  const cache = join(temp, "cache");
  Deno.env.set("MODEL_DIFF_CHECKPOINT_CACHE", cache);
  try {
    const sharded = await ensureFixtureModel("tiny-qwen3-hf");
    const single = await ensureFixtureModel("tiny-llama31-chat-hf");
    const copy = async (from: string, label: string) => {
      const dir = join(temp, label);
      await Deno.mkdir(dir);
      for await (const entry of Deno.readDir(from)) await Deno.copyFile(join(from, entry.name), join(dir, entry.name));
      return dir;
    };
    const edit = async (path: string, change: (text: string) => string) =>
      await Deno.writeTextFile(path, change(await Deno.readTextFile(path)));
    /** Rewrites the header of a safetensors file (same length, so the data stays where it was). */
    const editHeader = async (path: string, change: (header: string) => string) => {
      const bytes = await Deno.readFile(path);
      const length = Number(new DataView(bytes.buffer).getBigUint64(0, true));
      const header = new TextDecoder().decode(bytes.subarray(8, 8 + length));
      const changed = new TextEncoder().encode(change(header).padEnd(length, " "));
      assertEquals(changed.length, length, "header edit keeps the length");
      bytes.set(changed, 8);
      await Deno.writeFile(path, bytes);
    };

    const missingShard = await copy(sharded, "missing-shard");
    await Deno.remove(join(missingShard, "model-00002-of-00003.safetensors"));
    const absent = await copy(sharded, "index-names-absent");
    await edit(
      join(absent, "model.safetensors.index.json"),
      (t) =>
        t.replace(
          `"model.norm.weight": "model-00003-of-00003.safetensors"`,
          `"model.norm.weight": "model-00001-of-00003.safetensors"`,
        ),
    );
    const wrongShape = await copy(single, "wrong-shape");
    await edit(
      join(wrongShape, "config.json"),
      (t) => t.replace(`"intermediate_size": 128`, `"intermediate_size": 96`),
    );
    const int8 = await copy(single, "int8");
    await editHeader(
      join(int8, "model.safetensors"),
      (h) =>
        h.replace(
          /"model\.norm\.weight":\{"dtype":"F32","shape":\[64\]/,
          `"model.norm.weight":{"dtype":"I8","shape":[256]`,
        ),
    );
    const truncated = await copy(single, "truncated");
    const truncatedFile = join(truncated, "model.safetensors");
    await Deno.truncate(truncatedFile, (await Deno.stat(truncatedFile)).size - 100);
    const noType = await copy(single, "no-model-type");
    await edit(join(noType, "config.json"), (t) => t.replace(`"model_type": "llama",`, ""));
    // A weight beyond fp16's range: fine at fp32, refused at fp16 (it would become infinite).
    const huge = await copy(single, "beyond-fp16");
    const norm = (await openCheckpoint(dirSource(huge))).tensors.get("model.norm.weight")!;
    const file = await Deno.open(join(huge, norm.file), { write: true });
    await file.seek(norm.offset, Deno.SeekMode.Start);
    await file.write(new Uint8Array(Float32Array.of(1e5).buffer));
    file.close();

    const cases: [string, RegExp, GraphDtype?][] = [
      [missingShard, /is missing model-00002-of-00003\.safetensors \(named by model\.safetensors\.index\.json\)/],
      [absent, /puts model\.norm\.weight in model-00001-of-00003\.safetensors, which does not hold it/],
      [wrongShape, /has shape \[128,64\] but config\.json implies \[96,64\]/],
      [int8, /model\.norm\.weight has dtype I8; checkpoints must be F32, F16, BF16/],
      [truncated, /is not a valid safetensors file \(its tensors need \d+ bytes of data but it holds \d+: truncated\)/],
      [noType, /config\.json has no "model_type"/],
      [
        huge,
        /model\.safetensors: tensor model\.norm\.weight holds 100000 at index 0, beyond fp16's range .*use --dtype fp32/,
        "fp16",
      ],
    ];
    for (const [dir, pattern, dtype] of cases) {
      const error = await modelDirFromCheckpoint(dir, { dtype }).then(() => undefined, (e: unknown) => e);
      assert(error instanceof UserError, `${dir}: ${error}`);
      assert(!error.message.includes("\n"), "one line");
      assertMatch(error.message, pattern, error.message);
    }
    const left = await Array.fromAsync(Deno.readDir(cache)).catch(() => []);
    assertEquals(left, [], "no cache entry, complete or partial");
  } finally {
    Deno.env.delete("MODEL_DIFF_CHECKPOINT_CACHE");
    await Deno.remove(temp, { recursive: true });
  }
});
