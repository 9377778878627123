/**
 * Per-token KL divergence on the GPU (shaders/kl_divergence.wgsl): two models' logits for the same
 * tokens, gathered on the device from the models' output buffers (or uploaded once each from the
 * host), in row chunks under the adapter's binding limit; only four numbers per token come back (KL,
 * P's log-sum-exp, both argmaxes), so neither full-vocabulary tensor has to exist on the host.
 *
 * @module
 */

import { UserError } from "../core/errors.ts";
import type { Gpu } from "../backend/gpu_info.ts";
import { dispatch, pipeline, readBackAll, storageBuffer, uniformBuffer } from "./shader.ts";

/** The argmax the kernel reports for a row holding NaN or infinity. */
const NON_FINITE = 0xfffffffe;

/** Workgroups per dispatch dimension that every adapter allows (the WebGPU default limit). */
const MAX_GROUPS = 65535;

/** A run of consecutive rows of a [rows, vocab] logits array: rows `start` .. `start + count - 1`. */
export interface RowRun {
  start: number;
  count: number;
}

/** One model's logits for a set of rows, resident on the GPU in chunks of whole rows. */
export class GpuLogits {
  private constructor(
    readonly gpu: Gpu,
    readonly vocab: number,
    /** Each chunk's buffer and row count, in row order. */
    readonly chunks: { buffer: GPUBuffer; rows: number }[],
    /** The model, as errors name it ("base", "chat"). */
    readonly what: string,
    /** Where each held row came from in the source (a row of the batch's [batch x length] logits). */
    readonly sourceRows: number[],
  ) {}

  /** Rows per chunk for `vocab`: as many as one storage binding holds. */
  static rowsPerChunk(gpu: Gpu, vocab: number, maxChunkBytes = Infinity): number {
    const limit = Math.min(maxChunkBytes, gpu.maxStorageBufferBindingSize, gpu.maxBufferSize);
    const rows = Math.min(MAX_GROUPS, Math.floor(limit / (vocab * 4)));
    if (rows < 1) {
      throw new UserError(`a vocabulary of ${vocab} tokens does not fit one GPU storage binding (${limit} bytes)`);
    }
    return rows;
  }

  /**
   * Uploads the rows `runs` pick from `logits` ([*, vocab], row-major), in that order (`what` names
   * the model in errors). Uploading both models with the same runs and chunk size gives chunks that
   * pair row for row.
   */
  static upload(
    gpu: Gpu,
    logits: Float32Array,
    vocab: number,
    runs: readonly RowRun[],
    what: string,
    maxChunkBytes?: number,
  ): GpuLogits {
    return GpuLogits.#fill(gpu, vocab, runs, what, maxChunkBytes, (buffer, at, from, rows) => {
      const piece = logits.subarray(from * vocab, (from + rows) * vocab);
      gpu.device.queue.writeBuffer(buffer, at, piece.buffer as ArrayBuffer, piece.byteOffset, piece.byteLength);
    });
  }

  /**
   * The same as {@linkcode upload} for logits that are already on the shared GPU device (a model's
   * output buffer, [*, vocab] f32): the rows are copied there and never pass through the host.
   */
  static gather(
    gpu: Gpu,
    logits: GPUBuffer,
    vocab: number,
    runs: readonly RowRun[],
    what: string,
    maxChunkBytes?: number,
  ): GpuLogits {
    const commands = gpu.device.createCommandEncoder();
    const gathered = GpuLogits.#fill(gpu, vocab, runs, what, maxChunkBytes, (buffer, at, from, rows) => {
      commands.copyBufferToBuffer(logits, from * vocab * 4, buffer, at, rows * vocab * 4);
    });
    gpu.device.queue.submit([commands.finish()]);
    return gathered;
  }

  /** Walks the runs into chunks of whole rows, letting `write` fill each contiguous piece. */
  static #fill(
    gpu: Gpu,
    vocab: number,
    runs: readonly RowRun[],
    what: string,
    maxChunkBytes: number | undefined,
    write: (buffer: GPUBuffer, byteOffset: number, fromRow: number, rows: number) => void,
  ): GpuLogits {
    const perChunk = GpuLogits.rowsPerChunk(gpu, vocab, maxChunkBytes);
    const sourceRows = runs.flatMap((r) => Array.from({ length: r.count }, (_, i) => r.start + i));
    const chunks: { buffer: GPUBuffer; rows: number }[] = [];
    let run = 0;
    let within = 0;
    for (let done = 0; done < sourceRows.length;) {
      const rows = Math.min(perChunk, sourceRows.length - done);
      const buffer = storageBuffer(gpu, rows * vocab * 4);
      for (let filled = 0; filled < rows;) {
        const take = Math.min(rows - filled, runs[run].count - within);
        write(buffer, filled * vocab * 4, runs[run].start + within, take);
        filled += take;
        within += take;
        if (within === runs[run].count) [run, within] = [run + 1, 0];
      }
      chunks.push({ buffer, rows });
      done += rows;
    }
    return new GpuLogits(gpu, vocab, chunks, what, sourceRows);
  }

  /** Rows held. */
  get rows(): number {
    return this.chunks.reduce((n, c) => n + c.rows, 0);
  }

  /** Frees the GPU buffers. */
  destroy(): void {
    for (const chunk of this.chunks) chunk.buffer.destroy();
  }
}

/** Per row: KL(P ‖ Q) in nats, log Σ exp of P's logits, and each model's most likely token. */
export interface KlRows {
  kl: Float32Array;
  logSumExpP: Float32Array;
  argmaxP: Uint32Array;
  argmaxQ: Uint32Array;
}

/** KL(P ‖ Q) per row of two row-aligned uploads (same runs, same chunking). */
export async function klDivergence(p: GpuLogits, q: GpuLogits): Promise<KlRows> {
  const gpu = p.gpu;
  if (
    p.vocab !== q.vocab || p.chunks.length !== q.chunks.length || p.chunks.some((c, i) => c.rows !== q.chunks[i].rows)
  ) {
    throw new Error("klDivergence: the two logits uploads do not pair row for row");
  }
  const rows = p.rows;
  const result: KlRows = {
    kl: new Float32Array(rows),
    logSumExpP: new Float32Array(rows),
    argmaxP: new Uint32Array(rows),
    argmaxQ: new Uint32Array(rows),
  };
  const kernel = await pipeline(gpu, "kl_divergence");
  let at = 0;
  for (let c = 0; c < p.chunks.length; c++) {
    const n = p.chunks[c].rows;
    const out = storageBuffer(gpu, n * 8, true);
    const best = storageBuffer(gpu, n * 8, true);
    const params = uniformBuffer(gpu, [n, p.vocab, 0, 0]);
    const commands = gpu.device.createCommandEncoder();
    dispatch(gpu, commands, kernel, [p.chunks[c].buffer, q.chunks[c].buffer, out, best, params], [n, 1]);
    const [outBytes, bestBytes] = await readBackAll(gpu, commands, [
      { buffer: out, bytes: n * 8 },
      { buffer: best, bytes: n * 8 },
    ]);
    for (const buffer of [out, best, params]) buffer.destroy();
    const values = new Float32Array(outBytes);
    const indices = new Uint32Array(bestBytes);
    for (let r = 0; r < n; r++) {
      for (const [logits, argmax] of [[p, indices[2 * r]], [q, indices[2 * r + 1]]] as const) {
        if (argmax === NON_FINITE) {
          throw new UserError(
            `the ${logits.what} model's logits contain NaN or infinite values (row ${
              logits.sourceRows[at + r]
            }): the model overflowed; try --dtype fp32`,
          );
        }
      }
      result.kl[at + r] = values[2 * r];
      result.logSumExpP[at + r] = values[2 * r + 1];
      result.argmaxP[at + r] = indices[2 * r];
      result.argmaxQ[at + r] = indices[2 * r + 1];
    }
    at += n;
  }
  return result;
}
