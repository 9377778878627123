/**
 * A decoder's architecture in the terms its forward pass depends on, read from a Hugging Face
 * `config.json` (and written back for generated checkpoints). Each family follows its transformers
 * modelling code: `modeling_llama.py` (and Mistral, the same layer), `modeling_gemma2.py`,
 * `modeling_qwen2.py`, `modeling_qwen3.py`; RoPE scaling from `modeling_rope_utils.py`. A config this
 * toolkit cannot build faithfully is refused in one line, never approximated.
 *
 * @module
 */

import { UserError } from "../errors.ts";

/** Decoder architectures the graph builder and the f64 reference implement. */
export type Architecture = "llama" | "mistral" | "gemma2" | "qwen2" | "qwen3";

/** The `model_type` values accepted, for messages. */
export const ARCHITECTURES: readonly Architecture[] = ["llama", "mistral", "gemma2", "qwen2", "qwen3"];

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
  family: Architecture;
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
  const scaling = raw as Record<string, unknown>;
  const type = String(scaling.rope_type ?? scaling.type ?? "");
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

/** The sliding-window layers of a config, or undefined when attention is global everywhere. */
function parseSlidingWindow(
  config: Record<string, unknown>,
  family: Architecture,
  layers: number,
  where: string,
): DecoderConfig["slidingWindow"] {
  if (family === "qwen2" || family === "qwen3") {
    // Qwen's use_sliding_window applies from max_window_layers on; released checkpoints leave it off.
    if (config.use_sliding_window === true) {
      throw new UserError(`${where} sets use_sliding_window, which this toolkit does not implement`);
    }
    return undefined;
  }
  const size = config.sliding_window;
  if (size === null || size === undefined || family === "llama") return undefined;
  if (typeof size !== "number") throw new UserError(`${where} has a non-numeric sliding_window`);
  const types = config.layer_types as string[] | undefined;
  const all = Array.from({ length: layers }, (_, l) => l);
  if (types) return { size, layers: all.filter((l) => types[l] === "sliding_attention") };
  // Gemma 2 (configuration_gemma2.py): sliding attention on layers 0, 2, 4, ...; Mistral: every layer.
  return { size, layers: family === "gemma2" ? all.filter((l) => l % 2 === 0) : all };
}

/** Reads a Hugging Face `config.json` object; `where` names it in errors. */
export function decoderConfigFromHf(config: Record<string, unknown>, where: string): DecoderConfig {
  const modelType = config.model_type;
  if (typeof modelType !== "string") {
    throw new UserError(`${where} has no "model_type": expected a Hugging Face config.json of a decoder`);
  }
  if (!(ARCHITECTURES as readonly string[]).includes(modelType)) {
    throw new UserError(
      `${where} has model_type "${modelType}"; supported: ${ARCHITECTURES.join(", ")}`,
    );
  }
  const family = modelType as Architecture;
  const hiddenSize = need(config, "hidden_size", where);
  const numHeads = need(config, "num_attention_heads", where);
  const numLayers = need(config, "num_hidden_layers", where);
  const act = String(config.hidden_activation ?? config.hidden_act ?? "");
  const expectedAct = family === "gemma2" ? "gelu_pytorch_tanh" : "silu";
  if (act !== expectedAct) {
    throw new UserError(`${where} uses activation "${act}"; ${family} is built with ${expectedAct} only`);
  }
  const gemma = family === "gemma2";
  if ((family === "llama" || family === "mistral") && (config.attention_bias === true || config.mlp_bias === true)) {
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
    ropeTheta: typeof config.rope_theta === "number" ? config.rope_theta : 10000,
    ropeScaling: parseRopeScaling(config.rope_scaling, where),
    attentionBias: family === "qwen2",
    qkNorm: family === "qwen3",
    queryPreAttnScalar: gemma ? need(config, "query_pre_attn_scalar", where) : undefined,
    attnLogitSoftcap: gemma ? (config.attn_logit_softcapping as number | null) ?? undefined : undefined,
    finalLogitSoftcap: gemma ? (config.final_logit_softcapping as number | null) ?? undefined : undefined,
    slidingWindow: parseSlidingWindow(config, family, numLayers, where),
    tieWordEmbeddings: typeof config.tie_word_embeddings === "boolean" ? config.tie_word_embeddings : gemma,
  };
}

const ARCHITECTURE_CLASSES: Record<Architecture, string> = {
  llama: "LlamaForCausalLM",
  mistral: "MistralForCausalLM",
  gemma2: "Gemma2ForCausalLM",
  qwen2: "Qwen2ForCausalLM",
  qwen3: "Qwen3ForCausalLM",
};

/** The Hugging Face `config.json` fields of `config` (what {@linkcode decoderConfigFromHf} reads back). */
export function hfConfigOf(config: DecoderConfig): Record<string, unknown> {
  const gemma = config.family === "gemma2";
  const scaling = config.ropeScaling;
  return {
    architectures: [ARCHITECTURE_CLASSES[config.family]],
    model_type: config.family,
    vocab_size: config.vocabSize,
    hidden_size: config.hiddenSize,
    intermediate_size: config.intermediateSize,
    num_hidden_layers: config.numLayers,
    num_attention_heads: config.numHeads,
    num_key_value_heads: config.numKvHeads,
    head_dim: config.headDim,
    rms_norm_eps: config.rmsNormEps,
    rope_theta: config.ropeTheta,
    rope_scaling: scaling?.type === "llama3"
      ? {
        rope_type: "llama3",
        factor: scaling.factor,
        low_freq_factor: scaling.lowFreqFactor,
        high_freq_factor: scaling.highFreqFactor,
        original_max_position_embeddings: scaling.originalMaxPositions,
      }
      : scaling
      ? { rope_type: "linear", factor: scaling.factor }
      : null,
    max_position_embeddings: 8192,
    tie_word_embeddings: config.tieWordEmbeddings ?? gemma,
    ...(gemma
      ? {
        hidden_activation: "gelu_pytorch_tanh",
        query_pre_attn_scalar: config.queryPreAttnScalar,
        attn_logit_softcapping: config.attnLogitSoftcap ?? null,
        final_logit_softcapping: config.finalLogitSoftcap ?? null,
      }
      : { hidden_act: "silu" }),
    ...(config.slidingWindow ? { sliding_window: config.slidingWindow.size } : {}),
    ...(config.family === "qwen2" || config.family === "qwen3" ? { use_sliding_window: false } : {}),
    ...(config.family === "qwen3" ? { attention_bias: false } : {}),
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
    if (config.family === "gemma2") {
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
