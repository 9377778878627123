/**
 * Per-token KL divergence on the GPU (shaders/kl_divergence.wgsl): two models' logits for the same
 * tokens are uploaded once each, row chunks under the adapter's binding limit, and only four numbers
 * per token come back (KL, P's log-sum-exp, both argmaxes); the full-vocabulary log-softmax never
 * exists on the host.
 *
 * @module
 */

import { UserError } from "../errors.ts";
import type { Gpu } from "../gpu.ts";
import { dispatch, pipeline, readBack, storageBuffer, uniformBuffer } from "./shader.ts";

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
   * Uploads the rows `runs` pick from `logits` ([*, vocab], row-major), in that order, checking they
   * are finite (`what` names the model in the error). Uploading both models with the same runs and
   * chunk size gives chunks that pair row for row.
   */
  static upload(
    gpu: Gpu,
    logits: Float32Array,
    vocab: number,
    runs: readonly RowRun[],
    what: string,
    maxChunkBytes?: number,
  ): GpuLogits {
    const perChunk = GpuLogits.rowsPerChunk(gpu, vocab, maxChunkBytes);
    const total = runs.reduce((n, r) => n + r.count, 0);
    const chunks: { buffer: GPUBuffer; rows: number }[] = [];
    // Walk the runs row by row into chunks, writing contiguous pieces with one writeBuffer each.
    let run = 0;
    let within = 0;
    for (let done = 0; done < total;) {
      const rows = Math.min(perChunk, total - done);
      const buffer = storageBuffer(gpu, rows * vocab * 4);
      for (let filled = 0; filled < rows;) {
        const take = Math.min(rows - filled, runs[run].count - within);
        const from = (runs[run].start + within) * vocab;
        const piece = logits.subarray(from, from + take * vocab);
        for (let i = 0; i < piece.length; i++) {
          if (!Number.isFinite(piece[i])) {
            for (const chunk of chunks) chunk.buffer.destroy();
            buffer.destroy();
            throw new UserError(
              `the ${what} model's logits contain NaN or infinite values (row ${
                runs[run].start + within + Math.floor(i / vocab)
              }): the model overflowed; try --dtype fp32`,
            );
          }
        }
        gpu.device.queue.writeBuffer(
          buffer,
          filled * vocab * 4,
          piece.buffer as ArrayBuffer,
          piece.byteOffset,
          piece.byteLength,
        );
        filled += take;
        within += take;
        if (within === runs[run].count) [run, within] = [run + 1, 0];
      }
      chunks.push({ buffer, rows });
      done += rows;
    }
    return new GpuLogits(gpu, vocab, chunks);
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
    const out = storageBuffer(gpu, n * 16, true);
    const params = uniformBuffer(gpu, [n, p.vocab, 0, 0]);
    const encoder = gpu.device.createCommandEncoder();
    dispatch(gpu, encoder, kernel, [p.chunks[c].buffer, q.chunks[c].buffer, out, params], [n, 1]);
    const values = await readBack(gpu, encoder, out, n * 16);
    const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
    for (let r = 0; r < n; r++) {
      result.kl[at + r] = values[4 * r];
      result.logSumExpP[at + r] = values[4 * r + 1];
      result.argmaxP[at + r] = bits[4 * r + 2];
      result.argmaxQ[at + r] = bits[4 * r + 3];
    }
    out.destroy();
    params.destroy();
    at += n;
  }
  return result;
}
