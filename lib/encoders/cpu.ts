/**
 * SAE encoding on the CPU: x W_enc on onnxruntime-node's MatMul (MLAS, multithreaded, the fastest
 * GEMM this process can reach without a GPU), then bias, activation and the per-batch statistics in
 * one TypeScript pass each over the [rows, d_sae] result. The activations follow the SAE definitions
 * exactly as the WGSL kernels do (pre = x W_enc + b_enc rounded to f32; JumpReLU keeps pre > threshold;
 * TopK keeps the k largest pre-activations, ties to the lower feature id, then ReLU; gated opens where
 * pre > 0 and passes relu(x W_enc · scale + bias) of its magnitude path), and the
 * statistics partials have feature_stats.wgsl's layout, so FeatureStats takes them as it takes the GPU's.
 *
 * W_enc is passed to every run as an input tensor over the SAE's own array (no copy, no 2 GiB
 * protobuf limit); MLAS packs it per call, which measured no slower than a prepacked initializer.
 *
 * @module
 */

import * as ort from "onnxruntime-node";
import { GraphBuilder } from "../graph/builder.ts";
import { DataType, encodeModel } from "../graph/onnx.ts";
import { type FeatureStats, PARTIAL_ROWS, rowsPerType } from "../features/stats.ts";
import type { RowExamples } from "../features/top_examples.ts";
import type { Sae } from "../sae/config.ts";
import { encoderInput, type FeatureEncoder } from "../sae/feature_encoder.ts";

/** feature_stats.wgsl's starting max and min (the f32 extremes), so both devices write the same partials. */
const F32_MAX = 3.4028234663852886e38;

/** y = x W: the only part of the encode worth a GEMM. */
function matmulModel(dIn: number, dSae: number): Uint8Array {
  const b = new GraphBuilder();
  const x = b.input({ name: "x", elemType: DataType.FLOAT, dims: ["rows", dIn] });
  const w = b.input({ name: "w", elemType: DataType.FLOAT, dims: [dIn, dSae] });
  b.output(b.op("MatMul", [x, w]), { name: "y", elemType: DataType.FLOAT, dims: ["rows", dSae] });
  return encodeModel(b.build("sae_encode_cpu"));
}

/** An SAE's encoder on onnxruntime-node's CPU execution provider. */
export class CpuSaeEncoder implements FeatureEncoder {
  private constructor(
    readonly sae: Sae,
    private readonly session: ort.InferenceSession,
    private readonly weights: ort.Tensor,
  ) {}

  /** Builds the MatMul session for `sae`'s shape. */
  static async create(sae: Sae): Promise<CpuSaeEncoder> {
    const { dIn, dSae } = sae.config;
    const session = await ort.InferenceSession.create(matmulModel(dIn, dSae), { logSeverityLevel: 3 });
    return new CpuSaeEncoder(sae, session, new ort.Tensor("float32", sae.wEnc, [dIn, dSae]));
  }

  /** Feature activations of `rows` input vectors ([rows, dIn] row-major): [rows, dSae]. */
  async encode(x: Float32Array, rows: number): Promise<Float32Array> {
    const { dIn, dSae, architecture, k } = this.sae.config;
    const input = new ort.Tensor("float32", encoderInput(this.sae, x, rows), [rows, dIn]);
    const { y } = await this.session.run({ x: input, w: this.weights });
    const f = y.data as Float32Array;
    const { bEnc, threshold, magnitude } = this.sae;
    for (let r = 0; r < rows; r++) {
      const row = f.subarray(r * dSae, (r + 1) * dSae);
      if (architecture === "gated") {
        gate(row, bEnc, magnitude!);
        continue;
      }
      // Stored back into f32, as the GPU kernel rounds pre-activations before the activation.
      for (let j = 0; j < dSae; j++) row[j] += bEnc[j];
      if (architecture === "relu") {
        for (let j = 0; j < dSae; j++) if (!(row[j] > 0)) row[j] = 0;
      } else if (architecture === "jumprelu") {
        for (let j = 0; j < dSae; j++) if (!(row[j] > threshold[j])) row[j] = 0;
      } else {
        keepTopKRelu(row, k ?? 0);
      }
    }
    return f;
  }

  /**
   * Encodes `rows` vectors and adds their statistics to `stats` (and their positive activations to
   * `examples`); `rowType[r]` is row r's token type index.
   */
  async encodeInto(
    x: Float32Array,
    rows: number,
    rowType: Uint32Array,
    stats: FeatureStats,
    examples?: RowExamples,
  ): Promise<void> {
    const { dSae } = this.sae.config;
    const types = stats.tokenTypes.length;
    const f = await this.encode(x, rows);
    const perType = rowsPerType(rowType, types);
    stats.addPartials(statsPartials(f, rowType, rows, dSae, types), 0, dSae, perType);
    stats.addCounts(perType);
    examples?.examples.addRows(f, rows, rowType, examples.promptOfRow);
  }

  /** Nothing to do: statistics are added as each batch is encoded. */
  flush(): Promise<void> {
    return Promise.resolve();
  }

  /** Releases the ORT session. */
  destroy(): void {
    void this.session.release();
  }
}

/**
 * A gated SAE's activations from `row` = x W_enc, in place: the gate opens where x W_enc + b_gate > 0
 * (`bGate`), and an open feature takes relu(x W_enc · scale + bias) from the magnitude path.
 */
function gate(row: Float32Array, bGate: Float32Array, magnitude: { scale: Float32Array; bias: Float32Array }): void {
  const { scale, bias } = magnitude;
  for (let j = 0; j < row.length; j++) {
    const xw = row[j];
    row[j] = Math.fround(xw + bGate[j]) > 0 ? Math.max(0, Math.fround(Math.fround(xw * scale[j]) + bias[j])) : 0;
  }
}

/**
 * Keeps the k largest values of `row` (ties: the lower index wins), ReLU'd, and zeroes the rest: a
 * size-k heap, O(d_sae log k) rather than a sort of the whole row.
 */
export function keepTopKRelu(row: Float32Array, k: number): void {
  const n = row.length;
  if (k >= n) {
    for (let j = 0; j < n; j++) if (!(row[j] > 0)) row[j] = 0;
    return;
  }
  // Min-heap of kept indices by (value, then higher index first): the root is the one to evict next.
  const heap = new Int32Array(Math.max(0, k));
  const worse = (a: number, b: number) => row[a] < row[b] || (row[a] === row[b] && a > b);
  const siftDown = (size: number) => {
    for (let i = 0;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < size && worse(heap[l], heap[m])) m = l;
      if (r < size && worse(heap[r], heap[m])) m = r;
      if (m === i) return;
      [heap[i], heap[m]] = [heap[m], heap[i]];
      i = m;
    }
  };
  for (let j = 0; j < k; j++) {
    heap[j] = j;
    for (let i = j; i > 0;) {
      const p = (i - 1) >> 1;
      if (!worse(heap[i], heap[p])) break;
      [heap[i], heap[p]] = [heap[p], heap[i]];
      i = p;
    }
  }
  // Later indices only displace the root when strictly larger: on a tie the earlier feature stays.
  for (let j = k; j < n; j++) {
    if (k > 0 && row[j] > row[heap[0]]) {
      heap[0] = j;
      siftDown(k);
    }
  }
  const kept = new Float32Array(k);
  for (let i = 0; i < k; i++) kept[i] = Math.max(0, row[heap[i]]);
  row.fill(0);
  for (let i = 0; i < k; i++) row[heap[i]] = kept[i];
}

/**
 * The per-batch statistics partials of activations `f` ([rows, cols]) in feature_stats.wgsl's layout
 * ([types, 9, cols]: sums, max, active count, active sums, active min, then the two shifts), summed in
 * f64. f64 needs no shift to keep a batch's sum of squares (the shader shifts because f32 would
 * cancel), so both shifts are 0 here; zeros, most of a trained SAE's activations, add nothing to any
 * sum, so only nonzero values do work, and a column's max takes 0 when it held one.
 */
export function statsPartials(
  f: Float32Array,
  rowType: Uint32Array,
  rows: number,
  cols: number,
  types: number,
): Float64Array {
  const out = new Float64Array(types * PARTIAL_ROWS * cols);
  const row = (t: number, a: number) => out.subarray((t * PARTIAL_ROWS + a) * cols, (t * PARTIAL_ROWS + a + 1) * cols);
  const views = Array.from({ length: types }, (_, t) => Array.from({ length: PARTIAL_ROWS }, (_, a) => row(t, a)));
  const rowsOfType = rowsPerType(rowType.subarray(0, rows), types);
  // Nonzero values per type and feature: fewer than the type's rows means a 0 was among them.
  const nonzero = Array.from({ length: types }, () => new Float64Array(cols));
  for (const v of views) {
    v[2].fill(-F32_MAX);
    v[6].fill(F32_MAX);
  }
  for (let r = 0; r < rows; r++) {
    const t = rowType[r];
    const [sum, sumSq, max, count, activeSum, activeSumSq, activeMin] = views[t];
    const seen = nonzero[t];
    const at = r * cols;
    for (let c = 0; c < cols; c++) {
      const v = f[at + c];
      if (v === 0) continue;
      seen[c]++;
      sum[c] += v;
      sumSq[c] += v * v;
      if (v > max[c]) max[c] = v;
      if (v > 0) {
        count[c]++;
        activeSum[c] += v;
        activeSumSq[c] += v * v;
        if (v < activeMin[c]) activeMin[c] = v;
      }
    }
  }
  for (let t = 0; t < types; t++) {
    const max = views[t][2];
    for (let c = 0; c < cols; c++) if (nonzero[t][c] < rowsOfType[t] && max[c] < 0) max[c] = 0;
  }
  return out;
}
