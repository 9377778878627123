/**
 * The decoder graph of a Hugging Face architecture, laid out as Optimum's `text-generation-with-past`
 * export: inputs `input_ids`, `attention_mask`, `position_ids`, `past_key_values.{i}.key|value`;
 * outputs `logits`, `present.{i}.key|value`; torch-style node names such as
 * `/model/layers.{i}/self_attn/q_proj/MatMul`, with each layer's two residual additions as the only
 * `Add` nodes directly in `/model/layers.{i}` (`Add` after attention, `Add_1` = resid_post). So a graph
 * built from a checkpoint and an Optimum export are read, cut and steered by the same code. Where the
 * weights come from (in memory, or external data in the checkpoint's safetensors files) is the
 * {@linkcode WeightSource}'s business.
 *
 * @module
 */

import { GraphBuilder } from "../graph/builder.ts";
import { DataType, type onnx } from "../graph/onnx.ts";
import { type DecoderConfig, embeddingScale, FAMILIES, ropeInverseFrequencies } from "./config.ts";

/**
 * Precision of a built graph. fp16 keeps weights, the residual stream, the KV cache and the matmuls
 * in f16, as a half-precision transformers model runs, but computes in f32 whatever can overflow or
 * lose too much there: norms, the attention scores with their scale, soft-capping, mask and softmax,
 * and the MLP activation (torch computes half-precision activations in f32 internally); logits are f32.
 */
export type GraphDtype = "fp32" | "fp16";

/** Supplies a graph's weights by Hugging Face name. */
export interface WeightSource {
  /** The element type every tensor it supplies has, and so the graph's precision. */
  readonly dtype: GraphDtype;
  /** True when the checkpoint has tensor `name`. */
  has(name: string): boolean;
  /**
   * An initializer holding tensor `name` as stored (shape `shape`), named `graphName` (default
   * `name`); returns its graph name. Asking again for the same tensor returns the same initializer.
   */
  tensor(b: GraphBuilder, name: string, shape: number[], graphName?: string): string;
  /** A Linear weight (stored [out, in]) as an [in, out] tensor for MatMul; returns its graph name. */
  linear(b: GraphBuilder, name: string, out: number, inp: number): string;
}

const F32_MIN = -3.4028234663852886e38;

/** Graph layouts: Optimum's torch export, or onnxruntime-genai's builder (fused residual norms). */
export type GraphLayout = "optimum" | "genai";

/** The decoder graph of `config` with weights from `weights`, in the weights' precision. */
export function buildDecoderGraph(
  config: DecoderConfig,
  weights: WeightSource,
  layout: GraphLayout = "optimum",
): onnx.IModelProto {
  const b = new GraphBuilder();
  // Gemma 3's layer is Gemma 2's (scaled embeddings, (1 + w) norms, four norms, GeGLU) plus q/k norms.
  const gemma = FAMILIES[config.family].gemmaLayer;
  const { hiddenSize: d, numHeads: h, numKvHeads: kv, headDim: dh, vocabSize: v, intermediateSize: f } = config;
  const rep = h / kv;
  const tensor = (name: string, shape: number[]) => weights.tensor(b, name, shape);
  const half = weights.dtype === "fp16";
  /** The graph's activation type, and conversions into and out of the f32 islands. */
  const T = half ? DataType.FLOAT16 : DataType.FLOAT;
  const toF32 = (x: string) => half ? b.op("Cast", [x], { to: DataType.FLOAT }) : x;
  const toT = (x: string) => half ? b.op("Cast", [x], { to: DataType.FLOAT16 }) : x;
  /** A Linear layer in module scope `module`: MatMul by the [in, out] weight (+ bias when it has one). */
  const linear = (x: string, module: string, hfName: string, out: number, inp: number) =>
    b.scope(module, () => {
      const product = b.op("MatMul", [x, weights.linear(b, hfName, out, inp)]);
      const bias = hfName.replace(/\.weight$/, ".bias");
      return weights.has(bias) ? b.op("Add", [product, tensor(bias, [out])]) : product;
    });
  // In f32 as transformers does in half precision: Llama's norm casts back before the weight,
  // Gemma's multiplies by (1 + w) in f32 and casts the product.
  const rmsNormOver = (x: string, weight: string, size: number) => {
    const x32 = toF32(x);
    const square = b.op("Pow", [x32, b.float(2)]);
    const mean = b.op("ReduceMean", [square], { axes: [-1], keepdims: 1 });
    const inv = b.op("Reciprocal", [b.op("Sqrt", [b.op("Add", [mean, b.float(config.rmsNormEps)])])]);
    const normed = b.op("Mul", [x32, inv]);
    const w = tensor(weight, [size]);
    // Gemma's RMSNorm scales by (1 + w).
    return gemma ? toT(b.op("Mul", [normed, b.op("Add", [b.float(1), toF32(w)])])) : b.op("Mul", [toT(normed), w]);
  };
  const rmsNorm = (x: string, module: string, hfName: string) => b.scope(module, () => rmsNormOver(x, hfName, d));
  const softcap = (x: string, cap: number) =>
    b.op("Mul", [b.op("Tanh", [b.op("Div", [x, b.float(cap)])]), b.float(cap)]);

  const batch = "batch_size";
  const seq = "sequence_length";
  const past = "past_sequence_length";
  const total = "past_sequence_length + sequence_length";
  const inputIds = b.input({ name: "input_ids", elemType: DataType.INT64, dims: [batch, seq] });
  const attentionMask = b.input({ name: "attention_mask", elemType: DataType.INT64, dims: [batch, total] });
  const positionIds = b.input({ name: "position_ids", elemType: DataType.INT64, dims: [batch, seq] });
  const pastKv = Array.from(
    { length: config.numLayers },
    (_, l) =>
      (["key", "value"] as const).map((kind) =>
        b.input({ name: `past_key_values.${l}.${kind}`, elemType: T, dims: [batch, kv, past, dh] })
      ),
  );

  const logits = b.scope("model", () => {
    let hidden = b.scope("embed_tokens", () => {
      const weight = tensor("model.embed_tokens.weight", [v, d]);
      // The builder names outputs `{node}/output_0` (make_embedding); torch names them `{node}_output_0`.
      return layout === "genai"
        ? b.named("Gather", "Gather", [weight, inputIds], [`${b.prefix}/Gather/output_0`])[0]
        : b.op("Gather", [weight, inputIds]);
    });
    // In an fp16 graph the scale is an f16 constant: transformers rounds it to the activations' dtype.
    const embedScale = embeddingScale(config);
    if (embedScale !== undefined) hidden = b.op("Mul", [hidden, half ? b.half(embedScale) : b.float(embedScale)]);

    // Additive attention bias [B, 1, 1, S, T]: 0 where a query may attend (causal and not padding).
    const totalLength = b.op("Gather", [b.op("Shape", [attentionMask]), b.int64(1)], { axis: 0 });
    const newLength = b.op("Gather", [b.op("Shape", [inputIds]), b.int64(1)], { axis: 0 });
    const pastLength = b.op("Sub", [totalLength, newLength]);
    const keyIndex = b.op("Range", [b.int64(0), totalLength, b.int64(1)]);
    const queryIndex = b.op("Unsqueeze", [b.op("Range", [pastLength, totalLength, b.int64(1)]), b.int64([1])]);
    const causal = b.op("LessOrEqual", [keyIndex, queryIndex]);
    const notPadding = b.op("Unsqueeze", [b.op("Cast", [attentionMask], { to: DataType.BOOL }), b.int64([1, 2, 3])]);
    const allowed = b.op("And", [causal, notPadding]);
    const bias = b.op("Where", [allowed, b.float(0), b.float(F32_MIN)]);
    // Sliding-window layers: a query also may not see keys `size` or more positions back.
    const window = config.slidingWindow;
    const slidingBias = window && b.scope("sliding_window", () => {
      const near = b.op("Less", [b.op("Sub", [queryIndex, keyIndex]), b.int64(window.size)]);
      return b.op("Where", [b.op("And", [allowed, near]), b.float(0), b.float(F32_MIN)]);
    });
    const biasOf = (l: number) => (window && window.layers.includes(l) ? slidingBias! : bias);

    const rotary = (invFreq: number[]) => {
      const positions = b.op("Unsqueeze", [b.op("Cast", [positionIds], { to: DataType.FLOAT }), b.int64([2])]);
      const freqs = b.op("Mul", [positions, b.float(invFreq)]);
      const angles = b.op("Concat", [freqs, freqs], { axis: -1 });
      return [toT(b.op("Cos", [angles])), toT(b.op("Sin", [angles]))];
    };
    const [cos, sin] = b.scope("rotary_emb", () => rotary(ropeInverseFrequencies(config)));
    // Gemma 3 (modeling_gemma3.py, rotary_emb_local): sliding layers rotate by their own, unscaled base.
    const localTheta = config.localRopeTheta;
    const localRope = localTheta !== undefined &&
      b.scope("rotary_emb_local", () => rotary(ropeInverseFrequencies({ headDim: dh, ropeTheta: localTheta })));
    const ropeOf = (l: number) => (localRope && window?.layers.includes(l) ? localRope : [cos, sin]);

    /** Self-attention of layer l on normed input x (in scope /model/layers.l). */
    const attention = (l: number, attnIn: string) => {
      const p = `model.layers.${l}`;
      return b.scope("self_attn", () => {
        const rotateHalf = (x: string) => {
          const x1 = b.op("Slice", [x, b.int64([0]), b.int64([dh / 2]), b.int64([-1])]);
          const x2 = b.op("Slice", [x, b.int64([dh / 2]), b.int64([dh]), b.int64([-1])]);
          return b.op("Concat", [b.op("Neg", [x2]), x1], { axis: -1 });
        };
        const rope = (x: string, c: string, s: string) =>
          b.op("Add", [b.op("Mul", [x, c]), b.op("Mul", [rotateHalf(x), s])]);
        // Qwen3 and Gemma 3 ((1 + w)): RMSNorm over each head's dh values (the [.., heads, dh] view) before RoPE.
        const headNorm = (x: string, which: "q" | "k") =>
          config.qkNorm ? b.scope(`${which}_norm`, () => rmsNormOver(x, `${p}.self_attn.${which}_norm.weight`, dh)) : x;
        const qProj = linear(attnIn, "q_proj", `${p}.self_attn.q_proj.weight`, h * dh, d);
        // Queries as [B, kv, rep, S, dh] so grouped-query attention is a broadcast MatMul.
        const q = b.op("Transpose", [headNorm(b.op("Reshape", [qProj, b.int64([0, 0, kv, rep, dh])]), "q")], {
          perm: [0, 2, 3, 1, 4],
        });
        const headsFirst = (x: string, which?: "k") =>
          b.op("Transpose", [
            which ? headNorm(b.op("Reshape", [x, b.int64([0, 0, kv, dh])]), which) : b.op("Reshape", [
              x,
              b.int64([0, 0, kv, dh]),
            ]),
          ], { perm: [0, 2, 1, 3] });
        const k = headsFirst(linear(attnIn, "k_proj", `${p}.self_attn.k_proj.weight`, kv * dh, d), "k");
        const vNew = headsFirst(linear(attnIn, "v_proj", `${p}.self_attn.v_proj.weight`, kv * dh, d));
        const [c, s] = ropeOf(l);
        const qRot = rope(q, b.op("Unsqueeze", [c, b.int64([1, 2])]), b.op("Unsqueeze", [s, b.int64([1, 2])]));
        const kRot = rope(k, b.op("Unsqueeze", [c, b.int64([1])]), b.op("Unsqueeze", [s, b.int64([1])]));
        const keys = b.op("Concat", [pastKv[l][0], kRot], { axis: 2 });
        const values = b.op("Concat", [pastKv[l][1], vNew], { axis: 2 });
        b.output(keys, { name: `present.${l}.key`, elemType: T, dims: [batch, kv, total, dh] });
        b.output(values, { name: `present.${l}.value`, elemType: T, dims: [batch, kv, total, dh] });
        const keysT = b.op("Unsqueeze", [b.op("Transpose", [keys], { perm: [0, 1, 3, 2] }), b.int64([2])]);
        const scale = (config.queryPreAttnScalar ?? dh) ** -0.5;
        let scores = b.op("Mul", [toF32(b.op("MatMul", [qRot, keysT])), b.float(scale)]);
        if (config.attnLogitSoftcap) scores = softcap(scores, config.attnLogitSoftcap);
        const probs = toT(b.op("Softmax", [b.op("Add", [scores, biasOf(l)])], { axis: -1 }));
        const context = b.op("MatMul", [probs, b.op("Unsqueeze", [values, b.int64([2])])]);
        const merged = b.op("Reshape", [
          b.op("Transpose", [context], { perm: [0, 3, 1, 2, 4] }),
          b.int64([0, 0, h * dh]),
        ]);
        return linear(merged, "o_proj", `${p}.self_attn.o_proj.weight`, d, h * dh);
      });
    };
    /** The gated MLP of layer l on normed input x. */
    const mlp = (l: number, mlpIn: string) => {
      const p = `model.layers.${l}`;
      return b.scope("mlp", () => {
        const gate = linear(mlpIn, "gate_proj", `${p}.mlp.gate_proj.weight`, f, d);
        const up = linear(mlpIn, "up_proj", `${p}.mlp.up_proj.weight`, f, d);
        const activated = b.scope("act_fn", () => {
          const gate32 = toF32(gate);
          return toT(gemma ? geluTanh(b, gate32) : b.op("Mul", [gate32, b.op("Sigmoid", [gate32])]));
        });
        return linear(b.op("Mul", [activated, up]), "down_proj", `${p}.mlp.down_proj.weight`, d, f);
      });
    };
    if (layout === "genai") {
      // onnxruntime-genai's model builder (src/python/py/models/builders/base.py, make_layernorm and
      // make_model): residual additions fused into the next RMSNorm, named
      // /model/layers.{i}/{input|post_attention}_layernorm/SkipLayerNorm with inputs (root_input =
      // residual, skip_input = block output, weight) and outputs [output_0, "", "", output_3]
      // (output 3 = input + skip = the residual stream); layer 0's input norm is a plain
      // SimplifiedLayerNormalization named .../LayerNorm; the final norm sits at layer_id N =
      // number of layers, /model/layers.{N}/final_norm_layernorm/SkipLayerNorm, listing output 0 only.
      // (Attention and MLP keep this builder's primitive ops; only the norms' layout matters here.)
      const eps = { epsilon: { float: config.rmsNormEps } };
      const skipNorm = (layer: number, location: string, residual: string, delta: string, hfWeight: string) =>
        b.scope(`layers.${layer}`, () =>
          b.scope(`${location}_layernorm`, () => {
            const last = location === "final_norm";
            const out = [`${b.prefix}/output_0`, ...(last ? [] : ["", "", `${b.prefix}/output_3`])];
            const w = weights.tensor(b, hfWeight, [d], `model.layers.${layer}.${location}_layernorm.weight`);
            const [normed, , , sum] = b.named(
              "SkipLayerNorm",
              "SkipSimplifiedLayerNormalization",
              [residual, delta, w],
              out,
              eps,
              "com.microsoft",
            );
            return [normed, sum];
          }));
      let residual = hidden;
      let pendingDelta: string | undefined;
      for (let l = 0; l < config.numLayers; l++) {
        const p = `model.layers.${l}`;
        let attnIn: string;
        if (pendingDelta === undefined) {
          attnIn = b.scope(`layers.${l}`, () =>
            b.scope(
              "input_layernorm",
              () =>
                b.named(
                  "LayerNorm",
                  "SimplifiedLayerNormalization",
                  [
                    residual,
                    tensor(`${p}.input_layernorm.weight`, [d]),
                  ],
                  [`${b.prefix}/output_0`],
                  { ...eps, axis: -1, stash_type: 1 },
                )[0],
            ));
        } else {
          [attnIn, residual] = skipNorm(l, "input", residual, pendingDelta, `${p}.input_layernorm.weight`);
        }
        const attnOut = b.scope(`layers.${l}`, () => attention(l, attnIn));
        const [mlpIn, mid] = skipNorm(l, "post_attention", residual, attnOut, `${p}.post_attention_layernorm.weight`);
        residual = mid;
        pendingDelta = b.scope(`layers.${l}`, () => mlp(l, mlpIn));
      }
      return skipNorm(config.numLayers, "final_norm", residual, pendingDelta!, "model.norm.weight")[0];
    }

    for (let l = 0; l < config.numLayers; l++) {
      const p = `model.layers.${l}`;
      hidden = b.scope(`layers.${l}`, () => {
        const attnIn = rmsNorm(hidden, "input_layernorm", `${p}.input_layernorm.weight`);
        let attnOut = attention(l, attnIn);
        if (gemma) attnOut = rmsNorm(attnOut, "post_attention_layernorm", `${p}.post_attention_layernorm.weight`);
        const afterAttn = b.op("Add", [hidden, attnOut]);
        const mlpIn = gemma
          ? rmsNorm(afterAttn, "pre_feedforward_layernorm", `${p}.pre_feedforward_layernorm.weight`)
          : rmsNorm(afterAttn, "post_attention_layernorm", `${p}.post_attention_layernorm.weight`);
        let mlpOut = mlp(l, mlpIn);
        if (gemma) mlpOut = rmsNorm(mlpOut, "post_feedforward_layernorm", `${p}.post_feedforward_layernorm.weight`);
        return b.op("Add", [afterAttn, mlpOut]);
      });
    }
    return rmsNorm(hidden, "norm", "model.norm.weight");
  });

  let output = b.scope("lm_head", () => {
    const weight = config.tieWordEmbeddings
      ? b.op("Transpose", [tensor("model.embed_tokens.weight", [v, d])], { perm: [1, 0] })
      : weights.linear(b, "lm_head.weight", v, d);
    return toF32(b.op("MatMul", [logits, weight]));
  });
  if (config.finalLogitSoftcap) output = softcap(output, config.finalLogitSoftcap);
  b.output(output, { name: "logits", elemType: DataType.FLOAT, dims: [batch, seq, v] });
  // Graph outputs are listed logits first, then present.*, as Optimum does.
  b.outputs.unshift(b.outputs.pop()!);
  return b.build("main_graph");
}

/** GELU, tanh approximation (Gemma's `gelu_pytorch_tanh`), as torch exports it: primitive ops. */
function geluTanh(b: GraphBuilder, x: string): string {
  const cube = b.op("Mul", [b.op("Mul", [x, x]), x]);
  const inner = b.op("Mul", [
    b.op("Add", [x, b.op("Mul", [cube, b.float(0.044715)])]),
    b.float(Math.sqrt(2 / Math.PI)),
  ]);
  return b.op("Mul", [b.op("Mul", [x, b.float(0.5)]), b.op("Add", [b.float(1), b.op("Tanh", [inner])])]);
}
