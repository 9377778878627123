/**
 * Gemma 3 configs as the hub ships them, read the way transformers reads them (configuration_gemma3.py:
 * Gemma3TextConfig's defaults fill what a config leaves out, every 6th layer is global), and the
 * options this toolkit does not build refused in one line. The expected values are written out here
 * from the transformers source, not computed by the code under test.
 */

import { assert, assertEquals, assertMatch } from "../assert.ts";
import { join } from "node:path";
import { UserError } from "../../lib/errors.ts";
import { ensureFixtureModel, fixtureModelSpec } from "../../lib/fixtures/build.ts";
import { type DecoderConfig, decoderConfigFromHf, embeddingScale, hfConfigOf } from "../../lib/models/config.ts";

/** google/gemma-3-1b-it's config.json (transformers 4.50), as published. */
const GEMMA3_1B: Record<string, unknown> = {
  architectures: ["Gemma3ForCausalLM"],
  attention_bias: false,
  attention_dropout: 0.0,
  attn_logit_softcapping: null,
  bos_token_id: 2,
  cache_implementation: "hybrid",
  eos_token_id: [1, 106],
  final_logit_softcapping: null,
  head_dim: 256,
  hidden_activation: "gelu_pytorch_tanh",
  hidden_size: 1152,
  initializer_range: 0.02,
  intermediate_size: 6912,
  max_position_embeddings: 32768,
  model_type: "gemma3_text",
  num_attention_heads: 4,
  num_hidden_layers: 26,
  num_key_value_heads: 1,
  pad_token_id: 0,
  query_pre_attn_scalar: 256,
  rms_norm_eps: 1e-06,
  rope_local_base_freq: 10000,
  rope_scaling: null,
  rope_theta: 1000000,
  sliding_window: 512,
  sliding_window_pattern: 6,
  torch_dtype: "bfloat16",
  transformers_version: "4.50.0.dev0",
  use_cache: true,
  vocab_size: 262144,
};

/** google/gemma-3-4b-it's config.json: the decoder in a sparse text_config (vision_config abridged). */
const GEMMA3_4B: Record<string, unknown> = {
  architectures: ["Gemma3ForConditionalGeneration"],
  boi_token_index: 255999,
  eoi_token_index: 256000,
  eos_token_id: [1, 106],
  image_token_index: 262144,
  initializer_range: 0.02,
  mm_tokens_per_image: 256,
  model_type: "gemma3",
  text_config: {
    hidden_size: 2560,
    intermediate_size: 10240,
    model_type: "gemma3_text",
    num_hidden_layers: 34,
    rope_scaling: { factor: 8.0, rope_type: "linear" },
    sliding_window: 1024,
  },
  torch_dtype: "bfloat16",
  transformers_version: "4.50.0.dev0",
  vision_config: { hidden_size: 1152, image_size: 896, model_type: "siglip_vision_model", patch_size: 14 },
};

/** Layers 0..n-1 except the global ones. */
const slidingExcept = (n: number, global: number[]) =>
  Array.from({ length: n }, (_, l) => l).filter((l) => !global.includes(l));

/** JSON's view of a config (drops fields that are undefined). */
const plain = (config: DecoderConfig) => JSON.parse(JSON.stringify(config));

Deno.test("gemma-3-1b's config: every 6th layer global, local and global RoPE bases, bfloat16", () => {
  assertEquals(plain(decoderConfigFromHf(GEMMA3_1B, "config.json")), {
    family: "gemma3",
    vocabSize: 262144,
    hiddenSize: 1152,
    intermediateSize: 6912,
    numLayers: 26,
    numHeads: 4,
    numKvHeads: 1,
    headDim: 256,
    rmsNormEps: 1e-6,
    ropeTheta: 1000000,
    localRopeTheta: 10000,
    qkNorm: true,
    queryPreAttnScalar: 256,
    slidingWindow: { size: 512, layers: slidingExcept(26, [5, 11, 17, 23]) },
    tieWordEmbeddings: true,
    torchDtype: "bfloat16",
  });
});

Deno.test("gemma-3-4b's nested config: Gemma3TextConfig's defaults, linear RoPE scaling on global layers", () => {
  const config = decoderConfigFromHf(GEMMA3_4B, "config.json");
  assertEquals(plain(config), {
    family: "gemma3",
    vocabSize: 262208,
    hiddenSize: 2560,
    intermediateSize: 10240,
    numLayers: 34,
    numHeads: 8,
    numKvHeads: 4,
    headDim: 256,
    rmsNormEps: 1e-6,
    ropeTheta: 1000000,
    ropeScaling: { type: "linear", factor: 8 },
    localRopeTheta: 10000,
    qkNorm: true,
    queryPreAttnScalar: 256,
    slidingWindow: { size: 1024, layers: slidingExcept(34, [5, 11, 17, 23, 29]) },
    tieWordEmbeddings: true,
    torchDtype: "bfloat16",
  });
  // transformers 5 writes the same RoPE as rope_parameters per layer type, and layer_types explicitly.
  const { rope_scaling: _, ...text } = GEMMA3_4B.text_config as Record<string, unknown>;
  const v5 = decoderConfigFromHf({
    ...GEMMA3_4B,
    text_config: {
      ...text,
      layer_types: slidingExcept(34, []).map((l) => (l + 1) % 6 ? "sliding_attention" : "full_attention"),
      rope_parameters: {
        full_attention: { rope_type: "linear", factor: 8.0, rope_theta: 1000000 },
        sliding_attention: { rope_type: "default", rope_theta: 10000 },
      },
    },
  }, "config.json");
  assertEquals(plain(v5), plain(config));
  // An explicit layer_types wins over the pattern.
  const types = Array.from({ length: 26 }, (_, l) => l % 2 ? "full_attention" : "sliding_attention");
  assertEquals(
    decoderConfigFromHf({ ...GEMMA3_1B, layer_types: types }, "config.json").slidingWindow?.layers,
    slidingExcept(26, Array.from({ length: 13 }, (_, k) => 2 * k + 1)),
  );
});

Deno.test("Gemma 3's embedding scale is sqrt(hidden_size) in the weights' dtype", () => {
  const scale = (hiddenSize: number, torchDtype: DecoderConfig["torchDtype"]) =>
    embeddingScale({ family: "gemma3", hiddenSize, torchDtype });
  // modeling_gemma3.py: "sqrt(3072)=55.4256 to become 55.5" in bfloat16.
  assertEquals(scale(3072, "bfloat16"), 55.5);
  assertEquals(scale(1152, "bfloat16"), 34); // 33.941 with 8 significant bits
  assertEquals(scale(2560, "float16"), 50.59375); // 50.596 to the nearest 1/32
  assertEquals(scale(2560, "float32"), Math.fround(Math.sqrt(2560)));
  assertEquals(embeddingScale({ family: "gemma2", hiddenSize: 3584 }), Math.sqrt(3584));
  assertEquals(embeddingScale({ family: "llama", hiddenSize: 4096 }), undefined);
});

Deno.test("the tiny-gemma3-hf checkpoint's config.json reads back as its spec", async () => {
  const spec = fixtureModelSpec("tiny-gemma3-hf");
  assertEquals(plain(decoderConfigFromHf(hfConfigOf(spec.config), "config.json")), plain(spec.config));
  const dir = await ensureFixtureModel("tiny-gemma3-hf");
  const written = JSON.parse(await Deno.readTextFile(join(dir, "config.json")));
  assertEquals(plain(decoderConfigFromHf(written, "config.json")), plain(spec.config));
});

Deno.test("Gemma 3 options this toolkit does not build: one line each, naming the option", () => {
  const text = GEMMA3_4B.text_config as Record<string, unknown>;
  const cases: [Record<string, unknown>, RegExp][] = [
    [
      { ...GEMMA3_1B, rope_scaling: { rope_type: "yarn", factor: 4 } },
      /rope_scaling type "yarn", which this toolkit does not implement/,
    ],
    [
      {
        ...GEMMA3_1B,
        rope_scaling: {
          rope_type: "llama3",
          factor: 8,
          low_freq_factor: 1,
          high_freq_factor: 4,
          original_max_position_embeddings: 8192,
        },
      },
      /rope_scaling type "llama3" for Gemma 3, which this toolkit does not implement \(supported: default, linear\)/,
    ],
    [
      {
        ...GEMMA3_4B,
        text_config: {
          ...text,
          rope_parameters: {
            full_attention: { rope_type: "default", rope_theta: 1e6 },
            sliding_attention: { rope_type: "linear", factor: 2, rope_theta: 1e4 },
          },
        },
      },
      /text_config scales RoPE on sliding layers \(rope_type "linear"\)/,
    ],
    [{ ...GEMMA3_1B, use_bidirectional_attention: true }, /sets use_bidirectional_attention, which this toolkit/],
    [{ ...GEMMA3_1B, attention_bias: true }, /sets attention_bias, which this toolkit does not implement/],
    [{ ...GEMMA3_1B, hidden_activation: "gelu" }, /uses activation "gelu"; gemma3 is built with gelu_pytorch_tanh/],
    [{ ...GEMMA3_1B, layer_types: ["sliding_attention"] }, /has layer_types that are not 26 of/],
    [{ ...GEMMA3_1B, torch_dtype: "int8" }, /declares torch_dtype "int8"; expected float32, float16 or bfloat16/],
    [{ ...GEMMA3_4B, text_config: undefined }, /has model_type "gemma3" but no text_config/],
    [{ ...GEMMA3_1B, model_type: "gemma3n" }, /model_type "gemma3n"; supported: .*gemma3, gemma3_text/],
  ];
  for (const [config, pattern] of cases) {
    const error = (() => {
      try {
        decoderConfigFromHf(config, "config.json");
      } catch (e) {
        return e;
      }
    })();
    assert(error instanceof UserError, `expected a UserError for ${pattern}`);
    assert(!error.message.includes("\n"), "one line");
    assertMatch(error.message, pattern);
  }
});
