/**
 * A decoder's architecture in the terms its forward pass depends on, read from a Hugging Face
 * `config.json` (and written back for generated checkpoints). Each family follows its transformers
 * modelling code: `modeling_llama.py` (and Mistral, the same layer), `modeling_gemma2.py`,
 * `modeling_qwen2.py`, `modeling_qwen3.py`, `modeling_gemma3.py` (with `configuration_gemma3.py`); RoPE
 * scaling from `modeling_rope_utils.py`. A config this
 * toolkit cannot build faithfully is refused in one line, never approximated.
 *
 * @module
 */

import { UserError } from "../core/errors.ts";

/** The decoder families the graph builder and the f64 reference implement (config.json's `model_type`). */
export type ModelFamily = "llama" | "mistral" | "gemma2" | "qwen2" | "qwen3" | "gemma3";

/**
 * What each family's transformers modelling code does differently, in one table (as TransformerLens's
 * `convert_hf_model_config` keeps per-family facts): config reading, config writing, the tensors a
 * checkpoint holds and the graph builder all ask it instead of switching on the family's name.
 */
export interface FamilyFacts {
  /** The class transformers saves in `architectures`. */
  hfClass: string;
  /** The MLP's activation (`hidden_act`, or Gemma's `hidden_activation`). */
  activation: "silu" | "gelu_pytorch_tanh";
  /**
   * Gemma's layer (modeling_gemma2.py, modeling_gemma3.py): sqrt(d)-scaled embeddings, RMSNorms that
   * scale by (1 + w), four norms per layer, `query_pre_attn_scalar`, soft-capping fields.
   */
  gemmaLayer: boolean;
  /** q/k/v projections with biases (modeling_qwen2.py; o_proj has none). */
  attentionBias: boolean;
  /** RMSNorm over each query and key head before RoPE (modeling_qwen3.py, modeling_gemma3.py). */
  qkNorm: boolean;
  /**
   * Which layers a `sliding_window` applies to: none (Llama has no window), every layer (Mistral,
   * ignoring `layer_types` as MistralAttention does), `layer_types` else even layers (Gemma 2),
   * `use_sliding_window` (Qwen, off in released checkpoints), `layer_types` else the pattern (Gemma 3).
   */
  sliding: "none" | "every" | "even" | "qwen" | "gemma3";
}

/** Every family's facts. */
export const FAMILIES: Record<ModelFamily, FamilyFacts> = {
  llama: {
    hfClass: "LlamaForCausalLM",
    activation: "silu",
    gemmaLayer: false,
    attentionBias: false,
    qkNorm: false,
    sliding: "none",
  },
  mistral: {
    hfClass: "MistralForCausalLM",
    activation: "silu",
    gemmaLayer: false,
    attentionBias: false,
    qkNorm: false,
    sliding: "every",
  },
  gemma2: {
    hfClass: "Gemma2ForCausalLM",
    activation: "gelu_pytorch_tanh",
    gemmaLayer: true,
    attentionBias: false,
    qkNorm: false,
    sliding: "even",
  },
  qwen2: {
    hfClass: "Qwen2ForCausalLM",
    activation: "silu",
    gemmaLayer: false,
    attentionBias: true,
    qkNorm: false,
    sliding: "qwen",
  },
  qwen3: {
    hfClass: "Qwen3ForCausalLM",
    activation: "silu",
    gemmaLayer: false,
    attentionBias: false,
    qkNorm: true,
    sliding: "qwen",
  },
  gemma3: {
    hfClass: "Gemma3ForCausalLM",
    activation: "gelu_pytorch_tanh",
    gemmaLayer: true,
    attentionBias: false,
    qkNorm: true,
    sliding: "gemma3",
  },
};

/** The `model_type` values accepted, for messages (Gemma 3 is also accepted as `gemma3_text`). */
export const MODEL_FAMILIES = Object.keys(FAMILIES) as ModelFamily[];

/** RoPE frequency scaling (`rope_scaling`), as `_compute_linear_scaling_rope_parameters` / `_compute_llama3_parameters`. */
export type RopeScaling =
  | { type: "linear"; factor: number }
  | {
    type: "llama3";
    factor: number;
    lowFreqFactor: number;
    highFreqFactor: number;
    originalMaxPositions: number;
  };

/** What a decoder's forward pass depends on, in Hugging Face config terms. */
export interface DecoderConfig {
  family: ModelFamily;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling?: RopeScaling;
  /** Qwen2: q/k/v projections have biases (o_proj has none). */
  attentionBias?: boolean;
  /** Qwen3: RMSNorm over each query and key head before RoPE. */
  qkNorm?: boolean;
  /** Gemma 2: attention scores are scaled by queryPreAttnScalar^-0.5 instead of headDim^-0.5. */
  queryPreAttnScalar?: number;
  /** Gemma 2: scores become cap * tanh(scores / cap). */
  attnLogitSoftcap?: number;
  /** Gemma 2: logits become cap * tanh(logits / cap). */
  finalLogitSoftcap?: number;
  /** Sliding-window attention: a query sees keys at most `size - 1` positions back, on the listed layers. */
  slidingWindow?: { size: number; layers: number[] };
  /** The LM head is the embedding matrix (no `lm_head.weight`). */
  tieWordEmbeddings?: boolean;
  /**
   * Gemma 3: the RoPE base of the sliding-window layers (`rope_local_base_freq`), unscaled; the other
   * layers use `ropeTheta` and `ropeScaling`.
   */
  localRopeTheta?: number;
  /** Gemma 3: the dtype config.json declares (`torch_dtype` or `dtype`), which the embedding scale is rounded to. */
  torchDtype?: TorchDtype;
}

/** Float dtypes a checkpoint's config.json may declare. */
export type TorchDtype = "float32" | "float16" | "bfloat16";

/**
 * The factor the embeddings are multiplied by, or undefined: sqrt(hidden_size) for Gemma 2 and 3.
 * Gemma 3 rounds it to the weights' dtype first (`Gemma3TextScaledWordEmbedding.forward`:
 * `embed_scale.to(self.weight.dtype)`, so sqrt(1152) = 33.94 becomes 34 in a bfloat16 checkpoint).
 */
export function embeddingScale(config: Pick<DecoderConfig, "family" | "hiddenSize" | "torchDtype">) {
  if (!FAMILIES[config.family].gemmaLayer) return undefined;
  if (config.family === "gemma2") return Math.sqrt(config.hiddenSize);
  // torch.tensor(float) is float32 first, then cast (round to nearest even).
  const f32 = Math.fround(Math.sqrt(config.hiddenSize));
  if (config.torchDtype === "float16") return Math.f16round(f32);
  if (config.torchDtype !== "bfloat16") return f32;
  const bits = new Uint32Array(Float32Array.of(f32).buffer)[0];
  const rounded = ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) << 16;
  return new Float32Array(Uint32Array.of(rounded >>> 0).buffer)[0];
}

/** The positional inverse frequencies of one head (RoPE), with the config's scaling applied. */
export function ropeInverseFrequencies(config: Pick<DecoderConfig, "headDim" | "ropeTheta" | "ropeScaling">) {
  const dh = config.headDim;
  const base = Array.from({ length: dh / 2 }, (_, i) => 1 / config.ropeTheta ** ((2 * i) / dh));
  const scaling = config.ropeScaling;
  if (!scaling) return base;
  if (scaling.type === "linear") return base.map((f) => f / scaling.factor);
  const { factor, lowFreqFactor, highFreqFactor, originalMaxPositions } = scaling;
  const lowWavelength = originalMaxPositions / lowFreqFactor;
  const highWavelength = originalMaxPositions / highFreqFactor;
  return base.map((f) => {
    const wavelength = (2 * Math.PI) / f;
    if (wavelength > lowWavelength) return f / factor;
    if (wavelength < highWavelength) return f;
    const smooth = (originalMaxPositions / wavelength - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
    return (1 - smooth) * (f / factor) + smooth * f;
  });
}

function need(config: Record<string, unknown>, key: string, where: string): number {
  const value = config[key];
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new UserError(`${where} has no numeric "${key}"`);
  }
  return value;
}

function parseRopeScaling(raw: unknown, where: string): RopeScaling | undefined {
  if (raw === null || raw === undefined) return undefined;
  if (typeof raw !== "object") throw new UserError(`${where} has a rope_scaling that is not an object`);
  const scaling = raw as Record<string, unknown>;
  const partial = scaling.partial_rotary_factor;
  if (partial !== undefined && partial !== null && partial !== 1) {
    throw new UserError(
      `${where} rotates part of each head (partial_rotary_factor ${partial}), which this toolkit does not implement`,
    );
  }
  const type = String(scaling.rope_type ?? scaling.type ?? "default");
  if (type === "default") return undefined;
  if (type === "linear") return { type, factor: need(scaling, "factor", `${where} rope_scaling`) };
  if (type === "llama3") {
    const at = `${where} rope_scaling`;
    return {
      type,
      factor: need(scaling, "factor", at),
      lowFreqFactor: need(scaling, "low_freq_factor", at),
      highFreqFactor: need(scaling, "high_freq_factor", at),
      originalMaxPositions: need(scaling, "original_max_position_embeddings", at),
    };
  }
  throw new UserError(
    `${where} uses rope_scaling type "${type}", which this toolkit does not implement (supported: default, linear, llama3)`,
  );
}

/**
 * transformers' default RoPE base where a config names none: `RotaryEmbeddingConfigMixin.default_theta`
 * (modeling_rope_utils.py, transformers 5), the same 10000.0 that transformers 4's LlamaConfig,
 * MistralConfig, Qwen2Config, Qwen3Config and Gemma2Config default `rope_theta` to.
 */
const DEFAULT_ROPE_THETA = 10000;

/** The names transformers 5 nests per-layer-type RoPE settings under (`layer_types` values). */
const LAYER_TYPES = new Set(["full_attention", "sliding_attention"]);

/**
 * The RoPE of a family with one rotary embedding, from either config layout. transformers 4 writes
 * `rope_theta` and `rope_scaling`; transformers 5 writes only `rope_parameters` (`rope_theta`,
 * `rope_type` and the type's parameters). Precedence as `convert_rope_params_to_dict`
 * (modeling_rope_utils.py): a non-empty `rope_scaling` over `rope_parameters`; `rope_theta` from
 * that dict, else the top-level field, else the default.
 */
function singleRope(config: Record<string, unknown>, where: string): Pick<DecoderConfig, "ropeTheta" | "ropeScaling"> {
  // Python's `rope_scaling or rope_parameters`: an empty dict is falsy there, so it must be here too.
  const given = (value: unknown) =>
    value !== null && typeof value === "object" && Object.keys(value).length > 0 ? value : undefined;
  const raw = (given(config.rope_scaling) ?? given(config.rope_parameters) ?? null) as Record<string, unknown> | null;
  // transformers moves a top-level partial_rotary_factor into the RoPE parameters and applies it.
  const partial = config.partial_rotary_factor;
  if (partial !== undefined && partial !== null && partial !== 1) {
    throw new UserError(
      `${where} rotates part of each head (partial_rotary_factor ${partial}), which this toolkit does not implement`,
    );
  }
  let params = raw;
  if (params && typeof params === "object" && Object.keys(params).some((k) => LAYER_TYPES.has(k))) {
    // A per-layer-type dict on a model with one rotary embedding: honourable only when every entry agrees.
    const entries = Object.values(params).map((v) => JSON.stringify(v));
    if (new Set(entries).size !== 1) {
      throw new UserError(
        `${where} gives different rope_parameters per layer type, which ${config.model_type} models do not implement`,
      );
    }
    params = Object.values(params)[0] as Record<string, unknown>;
  }
  const theta = params?.rope_theta ?? config.rope_theta ?? DEFAULT_ROPE_THETA;
  if (typeof theta !== "number" || !Number.isFinite(theta) || theta <= 0) {
    throw new UserError(`${where} has a rope_theta that is not a positive number`);
  }
  return { ropeTheta: theta, ropeScaling: parseRopeScaling(params, where) };
}

/** The dtype a config declares (`torch_dtype` in transformers 4, `dtype` in 5), float32 when absent. */
function declaredDtype(sources: Record<string, unknown>[], where: string): TorchDtype {
  const found = sources.map((s) => s.torch_dtype ?? s.dtype).find((v) => v !== undefined && v !== null);
  const dtype = String(found ?? "float32");
  if (dtype !== "float32" && dtype !== "float16" && dtype !== "bfloat16") {
    throw new UserError(`${where} declares torch_dtype "${dtype}"; expected float32, float16 or bfloat16`);
  }
  return dtype;
}

/** The sliding-window layers of a config, or undefined when attention is global everywhere. */
function parseSlidingWindow(
  config: Record<string, unknown>,
  family: ModelFamily,
  layers: number,
  where: string,
): DecoderConfig["slidingWindow"] {
  const sliding = FAMILIES[family].sliding;
  if (sliding === "qwen") {
    // Qwen's use_sliding_window applies from max_window_layers on; released checkpoints leave it off.
    if (config.use_sliding_window === true) {
      throw new UserError(`${where} sets use_sliding_window, which this toolkit does not implement`);
    }
    return undefined;
  }
  const size = config.sliding_window;
  if (size === null || size === undefined || sliding === "none") return undefined;
  if (typeof size !== "number") throw new UserError(`${where} has a non-numeric sliding_window`);
  // transformers' Mistral ignores layer_types (configuration_mistral.py only warns "Detected Mistral model
  // with layer_types"; MistralAttention windows every layer with config.sliding_window): so do we.
  const types = sliding === "every" ? undefined : config.layer_types as string[] | undefined;
  const all = Array.from({ length: layers }, (_, l) => l);
  if (types) return { size, layers: all.filter((l) => types[l] === "sliding_attention") };
  // Gemma 2 (configuration_gemma2.py): sliding attention on layers 0, 2, 4, ...; Mistral: every layer.
  return { size, layers: sliding === "even" ? all.filter((l) => l % 2 === 0) : all };
}

/**
 * Gemma3TextConfig's defaults (configuration_gemma3.py): the multimodal (4B and larger) checkpoints'
 * `text_config` lists only what differs from them.
 */
const GEMMA3_TEXT_DEFAULTS: Record<string, unknown> = {
  vocab_size: 262208,
  hidden_size: 2304,
  intermediate_size: 9216,
  num_hidden_layers: 26,
  num_attention_heads: 8,
  num_key_value_heads: 4,
  head_dim: 256,
  hidden_activation: "gelu_pytorch_tanh",
  rms_norm_eps: 1e-6,
  rope_theta: 1000000,
  rope_local_base_freq: 10000,
  rope_scaling: null,
  attention_bias: false,
  query_pre_attn_scalar: 256,
  sliding_window: 4096,
  sliding_window_pattern: 6,
  final_logit_softcapping: null,
  attn_logit_softcapping: null,
  use_bidirectional_attention: false,
};

/** The RoPE of Gemma 3's global and sliding layers, from the flat fields or transformers 5's `rope_parameters`. */
function gemma3Rope(text: Record<string, unknown>, where: string) {
  const nested = text.rope_parameters as Record<string, Record<string, unknown> | undefined> | undefined;
  if (nested && typeof nested === "object") {
    // configuration_gemma3.py (transformers 5): rope_parameters[layer_type] = {rope_type, rope_theta, ...}.
    const global = nested.full_attention;
    const local = nested.sliding_attention;
    if (!global || !local) {
      throw new UserError(`${where} has rope_parameters without full_attention and sliding_attention entries`);
    }
    if (String(local.rope_type ?? "default") !== "default") {
      throw new UserError(
        `${where} scales RoPE on sliding layers (rope_type "${local.rope_type}"), which this toolkit does not implement`,
      );
    }
    return {
      ropeTheta: need(global, "rope_theta", `${where} rope_parameters.full_attention`),
      ropeScaling: gemma3Scaling(global, where),
      localRopeTheta: need(local, "rope_theta", `${where} rope_parameters.sliding_attention`),
    };
  }
  return {
    ropeTheta: need(text, "rope_theta", where),
    ropeScaling: gemma3Scaling(text.rope_scaling, where),
    localRopeTheta: need(text, "rope_local_base_freq", where),
  };
}

/** Gemma 3's global-layer scaling: none, or linear (the 4B and larger checkpoints' factor 8). */
function gemma3Scaling(raw: unknown, where: string): RopeScaling | undefined {
  const scaling = parseRopeScaling(raw, where);
  if (scaling && scaling.type !== "linear") {
    throw new UserError(
      `${where} uses rope_scaling type "${scaling.type}" for Gemma 3, which this toolkit does not implement (supported: default, linear)`,
    );
  }
  return scaling;
}

/**
 * A Gemma 3 config: `gemma3_text` (gemma-3-1b, 270m) or `gemma3` with the decoder in `text_config`
 * (Gemma3ForConditionalGeneration, 4B and larger; its vision tower is not used). Every field takes
 * Gemma3TextConfig's default when absent; sliding layers come from `layer_types`, else from
 * `sliding_window_pattern` (every 6th layer, counting from 1, is global).
 */
function gemma3ConfigFromHf(config: Record<string, unknown>, where: string): DecoderConfig {
  const nested = config.model_type === "gemma3";
  if (nested && (typeof config.text_config !== "object" || config.text_config === null)) {
    throw new UserError(`${where} has model_type "gemma3" but no text_config`);
  }
  const text: Record<string, unknown> = {
    ...GEMMA3_TEXT_DEFAULTS,
    ...Object.fromEntries(
      Object.entries(nested ? config.text_config as object : config).filter(([, v]) => v !== undefined),
    ),
  };
  const at = nested ? `${where} text_config` : where;
  const act = String(text.hidden_activation);
  if (act !== "gelu_pytorch_tanh") {
    throw new UserError(`${at} uses activation "${act}"; gemma3 is built with gelu_pytorch_tanh only`);
  }
  for (const option of ["attention_bias", "use_bidirectional_attention"]) {
    if (text[option] === true) throw new UserError(`${at} sets ${option}, which this toolkit does not implement`);
  }
  const numLayers = need(text, "num_hidden_layers", at);
  const pattern = need(text, "sliding_window_pattern", at);
  const types = (text.layer_types as unknown[] | undefined) ??
    Array.from({ length: numLayers }, (_, l) => (l + 1) % pattern ? "sliding_attention" : "full_attention");
  if (
    !Array.isArray(types) || types.length !== numLayers ||
    types.some((t) => t !== "sliding_attention" && t !== "full_attention")
  ) {
    throw new UserError(`${at} has layer_types that are not ${numLayers} of "sliding_attention" / "full_attention"`);
  }
  const softcap = (key: string) => (text[key] === null ? undefined : need(text, key, at));
  const dtype = declaredDtype([text, config], where);
  const tie = text.tie_word_embeddings ?? config.tie_word_embeddings ?? true;
  return {
    family: "gemma3",
    vocabSize: need(text, "vocab_size", at),
    hiddenSize: need(text, "hidden_size", at),
    intermediateSize: need(text, "intermediate_size", at),
    numLayers,
    numHeads: need(text, "num_attention_heads", at),
    numKvHeads: need(text, "num_key_value_heads", at),
    headDim: need(text, "head_dim", at),
    rmsNormEps: need(text, "rms_norm_eps", at),
    ...gemma3Rope(text, at),
    qkNorm: true,
    queryPreAttnScalar: need(text, "query_pre_attn_scalar", at),
    // attn_logit_softcapping is read into Gemma3Attention but never passed to the attention function
    // (modeling_gemma3.py, Gemma3Attention.forward): transformers does not apply it, so neither do we.
    finalLogitSoftcap: softcap("final_logit_softcapping"),
    slidingWindow: {
      size: need(text, "sliding_window", at),
      layers: types.flatMap((t, l) => (t === "sliding_attention" ? [l] : [])),
    },
    tieWordEmbeddings: tie === true,
    torchDtype: dtype,
  };
}

/** Reads a Hugging Face `config.json` object; `where` names it in errors. */
export function decoderConfigFromHf(config: Record<string, unknown>, where: string): DecoderConfig {
  const modelType = config.model_type;
  if (typeof modelType !== "string") {
    throw new UserError(`${where} has no "model_type": expected a Hugging Face config.json of a decoder`);
  }
  if (modelType === "gemma3" || modelType === "gemma3_text") return gemma3ConfigFromHf(config, where);
  if (!Object.hasOwn(FAMILIES, modelType)) {
    throw new UserError(
      `${where} has model_type "${modelType}"; supported: ${MODEL_FAMILIES.join(", ")}, gemma3_text`,
    );
  }
  const family = modelType as ModelFamily;
  const facts = FAMILIES[family];
  const hiddenSize = need(config, "hidden_size", where);
  const numHeads = need(config, "num_attention_heads", where);
  const numLayers = need(config, "num_hidden_layers", where);
  const act = String(config.hidden_activation ?? config.hidden_act ?? "");
  const expectedAct = facts.activation;
  if (act !== expectedAct) {
    throw new UserError(`${where} uses activation "${act}"; ${family} is built with ${expectedAct} only`);
  }
  const gemma = facts.gemmaLayer;
  declaredDtype([config], where); // only Gemma 3's forward depends on it, but a wrong one is refused for all
  // Qwen2's biases are fixed by its modelling code (no config field); elsewhere biases are not built.
  if ((!facts.attentionBias && config.attention_bias === true) || config.mlp_bias === true) {
    throw new UserError(
      `${where} sets attention_bias or mlp_bias, which this toolkit does not implement for ${family}`,
    );
  }
  return {
    family,
    vocabSize: need(config, "vocab_size", where),
    hiddenSize,
    intermediateSize: need(config, "intermediate_size", where),
    numLayers,
    numHeads,
    numKvHeads: typeof config.num_key_value_heads === "number" ? config.num_key_value_heads : numHeads,
    headDim: typeof config.head_dim === "number" ? config.head_dim : hiddenSize / numHeads,
    rmsNormEps: need(config, "rms_norm_eps", where),
    ...singleRope(config, where),
    attentionBias: facts.attentionBias,
    qkNorm: facts.qkNorm,
    queryPreAttnScalar: gemma ? need(config, "query_pre_attn_scalar", where) : undefined,
    attnLogitSoftcap: gemma ? (config.attn_logit_softcapping as number | null) ?? undefined : undefined,
    finalLogitSoftcap: gemma ? (config.final_logit_softcapping as number | null) ?? undefined : undefined,
    slidingWindow: parseSlidingWindow(config, family, numLayers, where),
    tieWordEmbeddings: typeof config.tie_word_embeddings === "boolean" ? config.tie_word_embeddings : gemma,
  };
}

/**
 * How transformers saved a config.json: 4 writes `rope_theta` + `rope_scaling` and `torch_dtype`;
 * 5 writes `rope_parameters` (per layer type for Gemma 3) and `dtype`.
 */
export type ConfigLayout = 4 | 5;

/** The `rope_parameters` dict of transformers 5 for a RoPE base and scaling. */
function ropeParameters(theta: number, scaling: RopeScaling | undefined): Record<string, unknown> {
  return { rope_theta: theta, ...(ropeScalingFields(scaling) ?? { rope_type: "default" }) };
}

/** transformers' `rope_scaling` fields of a scaling, or null. */
function ropeScalingFields(scaling: RopeScaling | undefined): Record<string, unknown> | null {
  if (!scaling) return null;
  if (scaling.type === "linear") return { rope_type: "linear", factor: scaling.factor };
  return {
    rope_type: "llama3",
    factor: scaling.factor,
    low_freq_factor: scaling.lowFreqFactor,
    high_freq_factor: scaling.highFreqFactor,
    original_max_position_embeddings: scaling.originalMaxPositions,
  };
}

/**
 * The Hugging Face `config.json` fields of `config` (what {@linkcode decoderConfigFromHf} reads back),
 * as transformers `layout` (default 4) saves them.
 */
export function hfConfigOf(config: DecoderConfig, layout: ConfigLayout = 4): Record<string, unknown> {
  const facts = FAMILIES[config.family];
  const gemma = facts.gemmaLayer;
  const rope = layout === 4
    ? { rope_theta: config.ropeTheta, rope_scaling: ropeScalingFields(config.ropeScaling) }
    : { rope_parameters: ropeParameters(config.ropeTheta, config.ropeScaling) };
  return {
    architectures: [facts.hfClass],
    model_type: config.family,
    vocab_size: config.vocabSize,
    hidden_size: config.hiddenSize,
    intermediate_size: config.intermediateSize,
    num_hidden_layers: config.numLayers,
    num_attention_heads: config.numHeads,
    num_key_value_heads: config.numKvHeads,
    head_dim: config.headDim,
    rms_norm_eps: config.rmsNormEps,
    ...rope,
    max_position_embeddings: 8192,
    tie_word_embeddings: config.tieWordEmbeddings ?? gemma,
    ...(gemma
      ? {
        hidden_activation: facts.activation,
        query_pre_attn_scalar: config.queryPreAttnScalar,
        attn_logit_softcapping: config.attnLogitSoftcap ?? null,
        final_logit_softcapping: config.finalLogitSoftcap ?? null,
      }
      : { hidden_act: facts.activation }),
    ...(config.slidingWindow ? { sliding_window: config.slidingWindow.size } : {}),
    ...(facts.sliding === "qwen" ? { use_sliding_window: false } : {}),
    ...(config.family === "qwen3" ? { attention_bias: false } : {}),
    ...(config.family === "gemma3" ? gemma3HfFields(config, layout) : {}),
    [layout === 4 ? "torch_dtype" : "dtype"]: config.torchDtype ?? "float32",
    transformers_version: layout === 4 ? "4.57.1" : "5.0.0",
  };
}

/** What a Gemma 3 config.json says beyond Gemma 2's fields, as transformers writes a gemma3_text config. */
function gemma3HfFields(config: DecoderConfig, layout: ConfigLayout): Record<string, unknown> {
  const sliding = new Set(config.slidingWindow?.layers);
  const rope = layout === 4 ? { rope_local_base_freq: config.localRopeTheta } : {
    // configuration_gemma3.py (transformers 5): one dict per layer type.
    rope_parameters: {
      full_attention: ropeParameters(config.ropeTheta, config.ropeScaling),
      sliding_attention: ropeParameters(config.localRopeTheta!, undefined),
    },
  };
  return {
    model_type: "gemma3_text",
    ...rope,
    layer_types: Array.from(
      { length: config.numLayers },
      (_, l) => sliding.has(l) ? "sliding_attention" : "full_attention",
    ),
  };
}

/**
 * Every tensor a checkpoint of `config` holds, by Hugging Face name, with its shape (Linear weights
 * [out, in]), in module order.
 */
export function parameterShapes(config: DecoderConfig): [string, number[]][] {
  const { hiddenSize: d, intermediateSize: f, numHeads: h, numKvHeads: kv, headDim: dh, vocabSize: v } = config;
  const shapes: [string, number[]][] = [["model.embed_tokens.weight", [v, d]]];
  for (let l = 0; l < config.numLayers; l++) {
    const p = `model.layers.${l}`;
    shapes.push([`${p}.input_layernorm.weight`, [d]]);
    shapes.push([`${p}.self_attn.q_proj.weight`, [h * dh, d]]);
    shapes.push([`${p}.self_attn.k_proj.weight`, [kv * dh, d]]);
    shapes.push([`${p}.self_attn.v_proj.weight`, [kv * dh, d]]);
    if (config.attentionBias) {
      shapes.push([`${p}.self_attn.q_proj.bias`, [h * dh]]);
      shapes.push([`${p}.self_attn.k_proj.bias`, [kv * dh]]);
      shapes.push([`${p}.self_attn.v_proj.bias`, [kv * dh]]);
    }
    if (config.qkNorm) {
      shapes.push([`${p}.self_attn.q_norm.weight`, [dh]]);
      shapes.push([`${p}.self_attn.k_norm.weight`, [dh]]);
    }
    shapes.push([`${p}.self_attn.o_proj.weight`, [d, h * dh]]);
    shapes.push([`${p}.post_attention_layernorm.weight`, [d]]);
    if (FAMILIES[config.family].gemmaLayer) {
      shapes.push([`${p}.pre_feedforward_layernorm.weight`, [d]]);
      shapes.push([`${p}.post_feedforward_layernorm.weight`, [d]]);
    }
    shapes.push([`${p}.mlp.gate_proj.weight`, [f, d]]);
    shapes.push([`${p}.mlp.up_proj.weight`, [f, d]]);
    shapes.push([`${p}.mlp.down_proj.weight`, [d, f]]);
  }
  shapes.push(["model.norm.weight", [d]]);
  if (!config.tieWordEmbeddings) shapes.push(["lm_head.weight", [v, d]]);
  return shapes;
}
