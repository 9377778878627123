/**
 * Text generation on a loaded model.
 *
 * @module
 */

import type { ModelHandle } from "./runtime.ts";
import { transformers } from "./runtime.ts";

/** Greedy continuation of `promptIds`: the `maxNewTokens` new token ids (fewer if EOS came first). */
export async function generateGreedy(
  handle: ModelHandle,
  promptIds: number[],
  maxNewTokens: number,
): Promise<number[]> {
  const input_ids = new transformers.Tensor("int64", BigInt64Array.from(promptIds, BigInt), [1, promptIds.length]);
  const attention_mask = new transformers.Tensor("int64", new BigInt64Array(promptIds.length).fill(1n), [
    1,
    promptIds.length,
  ]);
  const output = await handle.model.generate({
    input_ids,
    attention_mask,
    max_new_tokens: maxNewTokens,
    do_sample: false,
  }) as InstanceType<typeof transformers.Tensor>;
  const ids = (output.tolist() as (number | bigint)[][])[0].map(Number);
  return ids.slice(promptIds.length);
}
