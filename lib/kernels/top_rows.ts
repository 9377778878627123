/**
 * Running top rows per feature on the GPU (shaders/top_rows.wgsl): for every token type and feature,
 * the k highest positive activations and their global prompt indices, kept in device buffers across
 * batches and read back only where the statistics are (a checkpoint, the end), then merged into a
 * {@linkcode TopExamples} on the host with the same ranking rule.
 *
 * @module
 */

import { UserError } from "../core/errors.ts";
import type { Gpu } from "../backend/gpu_info.ts";
import { NO_PROMPT, TopExamples } from "../features/top_examples.ts";
import { dispatch, pipeline, readBackAll, storageBuffer, uniformBuffer } from "./shader.ts";

/** One batch of encoded rows, already on the device. */
export interface TopRowsBatch {
  /** [rows, dSae] activations. */
  features: GPUBuffer;
  /** [rows] u32 token type of each row. */
  rowTypes: GPUBuffer;
  /** [rows] u32 global prompt index of each row. */
  rowPrompts: GPUBuffer;
  rows: number;
}

/** The lists of one run on the device: [types, dSae, k] values (f32) and prompts (u32). */
export class TopRowLists {
  readonly #values: GPUBuffer;
  readonly #prompts: GPUBuffer;
  readonly #entries: number;
  /** Whether a batch was recorded since the last read-back. */
  #dirty = false;

  /** Device lists for `tokenTypes` x `dSae` features of `k` slots; refused when they exceed one binding. */
  constructor(readonly gpu: Gpu, readonly tokenTypes: readonly string[], readonly dSae: number, readonly k: number) {
    this.#entries = tokenTypes.length * dSae * k;
    const limit = Math.min(gpu.maxStorageBufferBindingSize, gpu.maxBufferSize);
    if (this.#entries * 4 > limit) {
      throw new UserError(
        `--top-examples ${k} needs ${
          Math.ceil(this.#entries * 4 / 2 ** 20)
        } MiB per list buffer (${tokenTypes.length} token types x ${dSae} features), over this adapter's ${
          Math.floor(limit / 2 ** 20)
        } MiB binding limit: use a smaller --top-examples`,
      );
    }
    this.#values = storageBuffer(gpu, this.#entries * 4, true);
    this.#prompts = storageBuffer(gpu, this.#entries * 4, true);
    this.#reset();
  }

  /** Whether `examples` has this shape (token types, features, list length). */
  fits(examples: TopExamples): boolean {
    return examples.dSae === this.dSae && examples.k === this.k &&
      examples.tokenTypes.join() === this.tokenTypes.join();
  }

  #reset(): void {
    // 0, not -inf: only positive activations enter, and WGSL lets compilers assume no infinities.
    this.gpu.device.queue.writeBuffer(this.#values, 0, new Float32Array(this.#entries));
    this.gpu.device.queue.writeBuffer(this.#prompts, 0, new Uint32Array(this.#entries).fill(NO_PROMPT));
  }

  /**
   * Appends the insertion of `batch`'s rows to `commands`. Returns the uniform buffer it made, to
   * destroy once the work is submitted.
   */
  async record(commands: GPUCommandEncoder, batch: TopRowsBatch): Promise<GPUBuffer> {
    const params = uniformBuffer(this.gpu, [batch.rows, this.dSae, this.tokenTypes.length, this.k]);
    dispatch(this.gpu, commands, await pipeline(this.gpu, "top_rows"), [
      batch.features,
      batch.rowTypes,
      batch.rowPrompts,
      this.#values,
      this.#prompts,
      params,
    ], [Math.ceil(this.dSae / 64), this.tokenTypes.length]);
    this.#dirty = true;
    return params;
  }

  /** Reads the lists back, merges them into `examples` and empties them on the device. */
  async flushInto(examples: TopExamples): Promise<void> {
    if (!this.#dirty) return;
    const [values, prompts] = await readBackAll(this.gpu, this.gpu.device.createCommandEncoder(), [
      { buffer: this.#values, bytes: this.#entries * 4 },
      { buffer: this.#prompts, bytes: this.#entries * 4 },
    ]);
    this.#reset();
    this.#dirty = false;
    examples.merge(
      TopExamples.fromArrays(this.tokenTypes, this.dSae, this.k, new Float32Array(values), new Uint32Array(prompts)),
    );
  }

  /** Frees the device buffers (lists not yet read back are dropped). */
  destroy(): void {
    this.#values.destroy();
    this.#prompts.destroy();
  }
}
