/**
 * Gemma 3 configs as the hub ships them, read the way transformers reads them (configuration_gemma3.py:
 * Gemma3TextConfig's defaults fill what a config leaves out, every 6th layer is global), and the
 * options this toolkit does not build refused in one line. The expected values are written out here
 * from the transformers source, not computed by the code under test.
 */

import { assert, assertBytesEqual, assertEquals, assertUserError } from "../assert.ts";
import { encodeModel } from "../../lib/graph/onnx.ts";
import { buildFixtureGraph } from "../../lib/fixtures/decoder_graph.ts";
import { fixtureWeights } from "../../lib/fixtures/weights.ts";
import { join } from "node:path";
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

/** Each config is refused with a UserError of one line matching its pattern. */
function assertRefusals(cases: [Record<string, unknown>, RegExp][]) {
  for (const [config, pattern] of cases) assertUserError(() => decoderConfigFromHf(config, "config.json"), pattern);
}

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
  assertRefusals(cases);
});

/** The fixture checkpoints of every family: their configs are the ones written in both layouts. */
const FAMILY_FIXTURES = [
  "tiny-llama-chat",
  "tiny-llama31-chat-hf",
  "tiny-mistral-hf",
  "tiny-gemma2-chat",
  "tiny-qwen2-hf",
  "tiny-qwen3-hf",
  "tiny-gemma3-hf",
];

Deno.test("every family: a transformers 5 config (rope_parameters, dtype) builds the same graph as its transformers 4 twin", () => {
  for (const name of FAMILY_FIXTURES) {
    const spec = fixtureModelSpec(name);
    const v4 = hfConfigOf(spec.config, 4);
    const v5 = hfConfigOf(spec.config, 5);
    // The twins differ where the layouts do: v5 carries no top-level RoPE fields and no torch_dtype.
    for (const key of ["rope_theta", "rope_scaling", "rope_local_base_freq", "torch_dtype"]) {
      assert(!(key in v5), `${name}: v5 has no ${key}`);
    }
    assert("rope_parameters" in v5 && "dtype" in v5, `${name}: v5 has rope_parameters and dtype`);
    const read4 = decoderConfigFromHf(v4, "config.json");
    const read5 = decoderConfigFromHf(v5, "config.json");
    assertEquals(plain(read5), plain(read4), name);
    // A small vocabulary keeps the weights cheap; the graph depends on the config, not on the vocabulary's size.
    const small = { ...spec, config: { ...spec.config, vocabSize: 40 } };
    const weights = fixtureWeights(small);
    const graph = (config: DecoderConfig) => encodeModel(buildFixtureGraph({ ...config, vocabSize: 40 }, weights));
    assertBytesEqual(graph(read5), graph(read4), `${name}: graph bytes`);
    assertBytesEqual(graph(read4), graph(spec.config), `${name}: graph bytes of the config read back`);
  }
});

/** meta-llama/Llama-3.1-8B's config.json as transformers 5 saves it (RoPE only in rope_parameters). */
const LLAMA31_V5: Record<string, unknown> = {
  architectures: ["LlamaForCausalLM"],
  bos_token_id: 128000,
  dtype: "bfloat16",
  eos_token_id: 128001,
  head_dim: 128,
  hidden_act: "silu",
  hidden_size: 4096,
  intermediate_size: 14336,
  max_position_embeddings: 131072,
  model_type: "llama",
  num_attention_heads: 32,
  num_hidden_layers: 32,
  num_key_value_heads: 8,
  rms_norm_eps: 1e-5,
  rope_parameters: {
    factor: 8.0,
    high_freq_factor: 4.0,
    low_freq_factor: 1.0,
    original_max_position_embeddings: 8192,
    rope_theta: 500000.0,
    rope_type: "llama3",
  },
  tie_word_embeddings: false,
  transformers_version: "5.0.0",
  vocab_size: 128256,
};

Deno.test("transformers 5 configs: Llama 3.1 keeps its theta and llama3 scaling, Mistral and Qwen their theta", () => {
  const llama = decoderConfigFromHf(LLAMA31_V5, "config.json");
  assertEquals([llama.ropeTheta, llama.ropeScaling], [500000, {
    type: "llama3",
    factor: 8,
    lowFreqFactor: 1,
    highFreqFactor: 4,
    originalMaxPositions: 8192,
  }]);
  const { rope_parameters: _, ...llamaBare } = LLAMA31_V5;
  const mistral = {
    ...llamaBare,
    model_type: "mistral",
    sliding_window: null,
    rope_parameters: { rope_theta: 1000000.0, rope_type: "default" },
  };
  assertEquals(decoderConfigFromHf(mistral, "config.json").ropeTheta, 1000000);
  const qwen = { ...mistral, model_type: "qwen2", use_sliding_window: false, sliding_window: 4096 };
  assertEquals(decoderConfigFromHf(qwen, "config.json").ropeTheta, 1000000);
  // transformers 4's layout, and a config naming no theta at all (RotaryEmbeddingConfigMixin.default_theta).
  assertEquals(decoderConfigFromHf({ ...llamaBare, rope_theta: 500000, rope_scaling: null }, "c").ropeTheta, 500000);
  assertEquals(decoderConfigFromHf(llamaBare, "c").ropeTheta, 10000);
  // An empty rope_scaling is Python-falsy: rope_parameters still counts (convert_rope_params_to_dict).
  assertEquals(decoderConfigFromHf({ ...mistral, rope_scaling: {} }, "c").ropeTheta, 1000000);
  // Per-layer-type parameters that agree are one RoPE.
  const nested = { ...mistral, rope_parameters: { full_attention: { rope_type: "default", rope_theta: 1e6 } } };
  assertEquals(decoderConfigFromHf(nested, "c").ropeTheta, 1e6);
});

Deno.test("fields transformers ignores are ignored: Gemma 3's attention soft-capping, Mistral's layer_types", () => {
  // modeling_gemma3.py never passes attn_logit_softcapping to the attention function.
  assertEquals(decoderConfigFromHf({ ...GEMMA3_1B, attn_logit_softcapping: 50 }, "c").attnLogitSoftcap, undefined);
  // MistralAttention windows every layer (configuration_mistral.py warns about layer_types and drops them).
  const { rope_parameters: _, ...llamaBare } = LLAMA31_V5;
  const mistral = { ...llamaBare, model_type: "mistral", sliding_window: 4096, num_hidden_layers: 4 };
  const types = ["full_attention", "sliding_attention", "full_attention", "sliding_attention"];
  assertEquals(decoderConfigFromHf({ ...mistral, layer_types: types }, "c").slidingWindow, {
    size: 4096,
    layers: [0, 1, 2, 3],
  });
});

Deno.test("RoPE settings the builder cannot honour: one line each", () => {
  const { rope_parameters: _, ...bare } = LLAMA31_V5;
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ ...bare, rope_parameters: { rope_type: "yarn", factor: 4, rope_theta: 1e6 } }, /rope_scaling type "yarn"/],
    [{ ...bare, rope_parameters: { rope_type: "dynamic", factor: 2 } }, /rope_scaling type "dynamic"/],
    [{ ...bare, rope_scaling: { type: "longrope", factor: 2 } }, /rope_scaling type "longrope"/],
    [
      { ...bare, rope_parameters: { rope_type: "default", rope_theta: 1e4, partial_rotary_factor: 0.5 } },
      /partial_rotary_factor 0.5/,
    ],
    [
      {
        ...bare,
        rope_parameters: {
          full_attention: { rope_type: "default", rope_theta: 1e6 },
          sliding_attention: { rope_type: "default", rope_theta: 1e4 },
        },
      },
      /different rope_parameters per layer type/,
    ],
    [{ ...bare, rope_parameters: { rope_type: "default", rope_theta: "big" } }, /rope_theta that is not a positive/],
    [{ ...bare, dtype: "int4" }, /declares torch_dtype "int4"/],
    [{ ...bare, rope_theta: 1e4, partial_rotary_factor: 0.25 }, /partial_rotary_factor 0.25/],
  ];
  assertRefusals(cases);
});
