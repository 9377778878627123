/**
 * Per-batch feature statistics on the GPU (shaders/feature_stats.wgsl), run on activations that are
 * already in a GPU buffer (straight after encoding). Each batch's [types, 9, d_sae] partials stay on
 * the device in a slot of a {@linkcode PartialsQueue} until the queue is flushed (at a checkpoint, at
 * the end, or when its slots run out); the host then adds them batch by batch in f64, in the order
 * they were recorded, so when the read-back happens never changes the result.
 *
 * @module
 */

import type { Gpu } from "../backend/gpu_info.ts";
import { type FeatureStats, PARTIAL_ROWS } from "../features/stats.ts";
import { NO_BAD_ROW } from "./sae_input.ts";
import { nonFiniteRow } from "../sae/feature_encoder.ts";
import { dispatch, pipeline, readBackAll, storageBuffer, uniformBuffer } from "./shader.ts";

/** Default bytes of partials a queue holds on the device before it must be read back. */
export const DEFAULT_QUEUE_BYTES = 64 * 2 ** 20;

interface Pending {
  stats: FeatureStats;
  /** Rows of each token type in the batch. */
  perType: Float64Array;
  /** Row index of the batch's first row in what the caller passed (for naming a bad row). */
  firstRow: number;
}

/** Batches' statistics partials held on the GPU until read back; one slot per batch. */
export class PartialsQueue {
  readonly slots: number;
  readonly #slotBytes: number;
  readonly #partialBytes: number;
  readonly #partials: GPUBuffer;
  /** One word per slot: the lowest row of that batch's input that was not finite (sae_input.wgsl). */
  readonly bad: GPUBuffer;
  #pending: Pending[] = [];

  /** A queue for `types` token types of `dSae` features, holding at most `maxBytes` of partials (at least one slot). */
  constructor(readonly gpu: Gpu, readonly dSae: number, readonly types: number, maxBytes = DEFAULT_QUEUE_BYTES) {
    this.#partialBytes = types * PARTIAL_ROWS * dSae * 4;
    const align = gpu.device.limits.minStorageBufferOffsetAlignment;
    this.#slotBytes = Math.ceil(this.#partialBytes / align) * align;
    this.slots = Math.max(
      1,
      Math.min(Math.floor(maxBytes / this.#slotBytes), Math.floor(gpu.maxBufferSize / this.#slotBytes)),
    );
    this.#partials = storageBuffer(gpu, this.slots * this.#slotBytes, true);
    this.bad = storageBuffer(gpu, new Uint32Array(this.slots).fill(NO_BAD_ROW), true);
  }

  /** Whether every slot holds a batch not yet read back. */
  get full(): boolean {
    return this.#pending.length === this.slots;
  }

  /** The slot the next batch records into (flush first when the queue is full). */
  get nextSlot(): number {
    if (this.full) throw new Error("the partials queue is full: flush it first");
    return this.#pending.length;
  }

  /**
   * Appends the statistics pass over `features` ([rows, dSae]) into the next slot to `commands`, to be
   * added to `stats` at the next {@linkcode flush}. Returns the uniform buffer it made, to destroy once
   * the work is submitted.
   */
  async record(
    commands: GPUCommandEncoder,
    batch: { features: GPUBuffer; rowTypes: GPUBuffer; rows: number; perType: Float64Array; firstRow: number },
    stats: FeatureStats,
  ): Promise<GPUBuffer> {
    const slot = this.nextSlot;
    const params = uniformBuffer(this.gpu, [batch.rows, this.dSae, this.types, 0]);
    const partial = { buffer: this.#partials, offset: slot * this.#slotBytes, size: this.#partialBytes };
    dispatch(this.gpu, commands, await pipeline(this.gpu, "feature_stats"), [
      batch.features,
      batch.rowTypes,
      partial,
      params,
    ], [Math.ceil(this.dSae / 64), this.types]);
    this.#pending.push({ stats, perType: batch.perType, firstRow: batch.firstRow });
    return params;
  }

  /**
   * Reads every pending batch's partials back (one submit, one map) and adds them to their statistics
   * in the order they were recorded. A batch whose input held NaN or infinity is named in a
   * {@linkcode UserError} and nothing of it or after it is added.
   */
  async flush(): Promise<void> {
    const pending = this.#pending;
    if (!pending.length) return;
    this.#pending = [];
    const [partials, bad] = await readBackAll(this.gpu, this.gpu.device.createCommandEncoder(), [
      { buffer: this.#partials, bytes: pending.length * this.#slotBytes },
      { buffer: this.bad, bytes: this.slots * 4 },
    ]);
    const badRows = new Uint32Array(bad);
    this.gpu.device.queue.writeBuffer(this.bad, 0, new Uint32Array(this.slots).fill(NO_BAD_ROW));
    pending.forEach(({ stats, perType, firstRow }, slot) => {
      if (badRows[slot] !== NO_BAD_ROW) {
        throw nonFiniteRow(firstRow + badRows[slot]);
      }
      const values = new Float32Array(partials, slot * this.#slotBytes, this.#partialBytes / 4);
      stats.addPartials(values, 0, this.dSae, perType);
      stats.addCounts(perType);
    });
  }

  /** Frees the device buffers (pending partials are dropped). */
  destroy(): void {
    this.#pending = [];
    this.#partials.destroy();
    this.bad.destroy();
  }
}
