/**
 * A loaded model as every task uses it, on either runtime and either platform: the transformers.js
 * model and tokenizer, its ONNX session, where the residual stream is, and how to make tensors the
 * session takes. The CLI loads models from disk (lib/runtime/runtime.ts), a page from the files it was
 * given (web/engine/page_runtime.ts); both make the handle here.
 *
 * @module
 */

import type * as Transformers from "@huggingface/transformers";
import type * as ortWeb from "onnxruntime-web/webgpu";
import type * as ortNode from "onnxruntime-node";
import type { Device } from "../backend/device.ts";
import type { ResidualMap } from "../graph/residuals.ts";
import type { RewriteSpec } from "../graph/rewrite.ts";

/** A loaded causal language model and everything scripts need with it. */
export interface ModelHandle {
  /** What the user passed: a directory or a hub id. */
  source: string;
  /** The local directory the original files are in. */
  localDir: string;
  device: Device;
  config: Transformers.PretrainedConfig & Record<string, unknown>;
  tokenizer: Transformers.PreTrainedTokenizer;
  model: Transformers.PreTrainedModel;
  /**
   * The transformers.js module the model was loaded with (the CLI's, over its runtime dispatcher, or
   * the page's): generation makes its tensors, streamers and seeds there, so it needs no platform import.
   */
  transformers: typeof Transformers;
  /** The ONNX session (of the rewritten graph, when there is one). */
  session: OrtSession;
  /** Where the residual stream is, when the graph was rewritten. */
  residuals?: ResidualMap;
  rewrite?: RewriteSpec;
  /** Whether the session's outputs come back as GPU buffers ({@linkcode LoadOptions.outputsOnGpu}). */
  outputsOnGpu: boolean;
  /** A tensor {@linkcode ModelHandle.session} accepts (each runtime only takes its own tensor class). */
  tensor(
    type: "float32" | "float16" | "int64",
    data: Float32Array | Float16Array | BigInt64Array,
    dims: readonly number[],
  ): OrtTensor;
  dispose(): Promise<void>;
}

/** The part of an ONNX Runtime session (web or node) this toolkit uses. */
export interface OrtSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  /** Declared inputs with their element types (`float32`, `float16`, `int64`, ...). */
  readonly inputMetadata: readonly ortWeb.InferenceSession.ValueMetadata[];
  run(feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>>;
}

/** A tensor of either runtime. */
export type OrtTensor = ortWeb.Tensor | ortNode.Tensor;

/**
 * The handle of `model` (loaded by `transformers`, over whichever runtime it was loaded) with its
 * tokenizer; `parts` say where it came from and how its graph was rewritten.
 */
export function modelHandle(
  transformers: typeof Transformers,
  model: Transformers.PreTrainedModel,
  tokenizer: Transformers.PreTrainedTokenizer,
  parts: Pick<ModelHandle, "source" | "localDir" | "device" | "residuals" | "rewrite" | "outputsOnGpu">,
): ModelHandle {
  return {
    ...parts,
    config: model.config as ModelHandle["config"],
    tokenizer,
    model,
    transformers,
    session: (model as unknown as { sessions: Record<string, OrtSession> }).sessions.model,
    // transformers.js's Tensor wraps a tensor of the runtime it was loaded over.
    tensor: (type, data, dims) =>
      (new transformers.Tensor(type, data, [...dims]) as unknown as { ort_tensor: OrtTensor }).ort_tensor,
    dispose: async () => {
      await model.dispose();
    },
  };
}
