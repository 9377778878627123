/**
 * Text generation on a loaded model, optionally under steering: the steering inputs of a rewritten
 * graph are fed at every forward pass `generate()` makes, so the intervention applies at every step
 * with the KV cache. Platform-neutral: tensors and streamers come from the transformers.js the handle
 * was loaded with ({@linkcode ModelHandle.transformers}), so the CLI and the page run this same code.
 *
 * @module
 */

import { UserError } from "../core/errors.ts";
import type * as Transformers from "@huggingface/transformers";
import type { ModelHandle } from "./runtime.ts";
import { steeringInputNames, type SteeringValues } from "../graph/steering.ts";

type Tensor = Transformers.Tensor;

/** Options of {@linkcode generate}. */
export interface GenerateOptions {
  maxNewTokens: number;
  /** Values for each steering site of the handle's rewrite (required when it has sites). */
  steering?: SteeringValues[];
  /** Extra transformers.js generation options (sampling, temperature, bad_words_ids, ...). */
  generation?: Record<string, unknown>;
  /** Called with each new token id as it is generated. */
  onToken?: (id: number) => void;
  /** Called with decoded text as it is generated (word by word). */
  onText?: (text: string) => void;
}

/** The graph inputs that carry `values` for the handle's steering sites. */
export function steeringFeeds(handle: ModelHandle, values: SteeringValues[] = []): Record<string, Tensor> {
  const sites = handle.rewrite?.steering ?? [];
  if (values.length !== sites.length) {
    throw new UserError(`the model has ${sites.length} steering site(s) but ${values.length} value set(s) were given`);
  }
  const dModel = Number(handle.config.hidden_size);
  const { transformers } = handle;
  const feeds: Record<string, Tensor> = {};
  values.forEach((value, index) => {
    if (value.vector.length !== dModel) {
      throw new UserError(
        `steering vector ${index} has ${value.vector.length} dimensions but the model has d_model ${dModel}`,
      );
    }
    const names = steeringInputNames(index);
    feeds[names.vector] = new transformers.Tensor("float32", value.vector, [dModel]);
    feeds[names.scalar] = new transformers.Tensor("float32", new Float32Array([value.scalar]), []);
  });
  return feeds;
}

/** Runs `body` with the handle's forward pass also feeding the steering inputs. */
export async function withSteering<T>(
  handle: ModelHandle,
  values: SteeringValues[],
  body: () => Promise<T>,
): Promise<T> {
  const feeds = steeringFeeds(handle, values);
  if (!Object.keys(feeds).length) return await body();
  const model = handle.model as unknown as { forward: (inputs: Record<string, unknown>) => Promise<unknown> };
  const original = model.forward;
  model.forward = (inputs) => original.call(handle.model, { ...inputs, ...feeds });
  try {
    return await body();
  } finally {
    model.forward = original;
  }
}

/** Continues `promptIds` and returns the new token ids (greedy unless `generation` says otherwise). */
export function generate(handle: ModelHandle, promptIds: number[], options: GenerateOptions): Promise<number[]> {
  const n = promptIds.length;
  const { transformers } = handle;
  const input_ids = new transformers.Tensor("int64", BigInt64Array.from(promptIds, BigInt), [1, n]);
  const attention_mask = new transformers.Tensor("int64", new BigInt64Array(n).fill(1n), [1, n]);
  const streamer = options.onToken || options.onText ? streamerFor(handle, options) : undefined;
  return withSteering(handle, options.steering ?? [], async () => {
    const output = await handle.model.generate({
      input_ids,
      attention_mask,
      max_new_tokens: options.maxNewTokens,
      do_sample: false,
      ...options.generation,
      streamer,
    }) as Tensor;
    return (output.tolist() as (number | bigint)[][])[0].map(Number).slice(n);
  });
}

/** A streamer reporting new tokens and text (the prompt is skipped). */
function streamerFor(handle: ModelHandle, options: GenerateOptions) {
  return new handle.transformers.TextStreamer(handle.tokenizer, {
    skip_prompt: true,
    skip_special_tokens: false,
    callback_function: (text: string) => options.onText?.(text),
    token_callback_function: (ids: bigint[]) => ids.forEach((id) => options.onToken?.(Number(id))),
  });
}

/** Greedy continuation of `promptIds`: the `maxNewTokens` new token ids (fewer if EOS came first). */
export function generateGreedy(handle: ModelHandle, promptIds: number[], maxNewTokens: number): Promise<number[]> {
  return generate(handle, promptIds, { maxNewTokens });
}
