/**
 * The logit lens of the activation-difference lens: a vector through a checkpoint's final norm and
 * unembedding, read from the checkpoint's files wherever they are, and the tokens it promotes and
 * suppresses.
 *
 * @module
 */

import { UserError } from "../core/errors.ts";
import type { Checkpoint } from "../models/checkpoint.ts";
import { FAMILIES } from "../models/config.ts";
import { toFloat32 } from "../io/safetensors.ts";

/** The final norm and unembedding of a checkpoint, and how to apply them. */
export interface Unembedding {
  vocab: number;
  dModel: number;
  eps: number;
  /** The norm's effective scale: w, or 1 + w for Gemma's (1 + w) RMSNorm. */
  normScale: Float64Array;
  /** Reads rows [start, start + count) of the [vocab, dModel] unembedding as f32. */
  rows(start: number, count: number): Promise<Float32Array>;
}

/** The final norm and unembedding of `checkpoint`, read from its files as the lens needs them. */
export async function unembeddingOf(checkpoint: Checkpoint): Promise<Unembedding> {
  const { config } = checkpoint;
  const read = async (name: string, start = 0, count?: number) => {
    const tensor = checkpoint.tensors.get(name)!;
    const rowBytes = tensor.length / tensor.shape[0];
    const bytes = count ?? tensor.shape[0];
    const raw = await checkpoint.source.read(tensor.file, tensor.offset + start * rowBytes, bytes * rowBytes);
    return toFloat32(tensor.dtype, raw, name);
  };
  const norm = await read("model.norm.weight");
  // Gemma 2 and 3 both scale by (1 + w) (Gemma2RMSNorm, Gemma3RMSNorm).
  const gemma = FAMILIES[config.family].gemmaLayer;
  const head = config.tieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight";
  return {
    vocab: config.vocabSize,
    dModel: config.hiddenSize,
    eps: config.rmsNormEps,
    normScale: Float64Array.from(norm, (w) => gemma ? 1 + w : w),
    rows: (start, count) => read(head, start, count),
  };
}

/** Rows of the unembedding read at a time (a 128256 x 4096 f32 head is 2 GiB; 4096 rows are 64 MiB). */
const ROW_BLOCK = 4096;

/**
 * The lens: W_U · RMSNorm(v) per vector, in f64 over the f32 weights, reading the unembedding once in
 * row blocks. The final logit soft-cap (Gemma 2) is left out: it is monotonic, so the ranking is the
 * same, and the raw values are what the lens literature reports.
 */
export async function lensLogits(unembedding: Unembedding, vectors: readonly Float64Array[]): Promise<Float64Array[]> {
  const { vocab, dModel, eps, normScale } = unembedding;
  const normed = vectors.map((v) => {
    if (v.length !== dModel) {
      throw new UserError(`a ${v.length}-dimensional vector cannot be read by a ${dModel}-wide model`);
    }
    const rms = Math.sqrt(v.reduce((s, x) => s + x * x, 0) / dModel + eps);
    return v.map((x, i) => (x / rms) * normScale[i]);
  });
  const out = vectors.map(() => new Float64Array(vocab));
  for (let start = 0; start < vocab; start += ROW_BLOCK) {
    const count = Math.min(ROW_BLOCK, vocab - start);
    const block = await unembedding.rows(start, count);
    for (let r = 0; r < count; r++) {
      const row = r * dModel;
      normed.forEach((x, k) => {
        let dot = 0;
        for (let i = 0; i < dModel; i++) dot += block[row + i] * x[i];
        out[k][start + r] = dot;
      });
    }
  }
  return out;
}

/** One token of a lens ranking. */
export interface LensToken {
  rank: number;
  tokenId: number;
  logit: number;
}

/** The `n` most promoted (largest lens logit) and most suppressed (smallest) tokens; ties: lower id. */
export function lensTopTokens(logits: Float64Array, n: number): { promoted: LensToken[]; suppressed: LensToken[] } {
  const ids = [...logits.keys()];
  const pick = (sign: number) =>
    ids.sort((a, b) => sign * (logits[b] - logits[a]) || a - b).slice(0, n).map((tokenId, i) => ({
      rank: i + 1,
      tokenId,
      logit: logits[tokenId],
    }));
  return { promoted: pick(1), suppressed: pick(-1) };
}
