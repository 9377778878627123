/**
 * Per-feature statistics of SAE activations, per read position (token type): the one record that
 * collection, checkpoints, shard merging, the stats file and the diff share.
 *
 * Sums are kept as double-double (hi + lo, error-free TwoSum), so a million prompts lose nothing
 * and shards merge into the same numbers as one run; max, min and counts are exact anyway.
 *
 * @module
 */

import { UserError } from "../core/errors.ts";
import type { TensorToWrite } from "../io/safetensors.ts";

/** Accumulator rows per token type, in the order feature_stats.wgsl writes its partials. */
export const ACCUMULATORS = ["sum", "sumSq", "max", "activeCount", "activeSum", "activeSumSq", "activeMin"] as const;
const SUMMED = new Set([0, 1, 3, 4, 5]);
/** Rows per token type of feature_stats.wgsl's partials: the accumulators, then the two shifts. */
export const PARTIAL_ROWS = 9;
const MAX = 2;
const MIN = 6;

/** Finalised metrics of one token type (the notebook's names). */
export interface FeatureMetrics {
  all_mean: Float64Array;
  all_std: Float64Array;
  max: Float64Array;
  num_active: Float64Array;
  sparsity: Float64Array;
  active_mean: Float64Array;
  active_std: Float64Array;
  active_min: Float64Array;
}

/** The metric names of {@linkcode FeatureMetrics}. */
export const METRICS = [
  "all_mean",
  "all_std",
  "max",
  "num_active",
  "sparsity",
  "active_mean",
  "active_std",
  "active_min",
] as const;

/** How many of `rowType`'s rows are of each of `types` token types (what addPartials and addCounts take). */
export function rowsPerType(rowType: ArrayLike<number>, types: number): Float64Array {
  const counts = new Float64Array(types);
  for (let r = 0; r < rowType.length; r++) counts[rowType[r]]++;
  return counts;
}

/** Accumulated statistics over rows of feature activations, per token type. */
export class FeatureStats {
  private constructor(
    readonly tokenTypes: string[],
    readonly dSae: number,
    /** Rows seen per token type. */
    readonly count: Float64Array,
    /** [types, 7, dSae]: high parts (and max/min). */
    readonly hi: Float64Array,
    /** [types, 7, dSae]: low parts of the sums. */
    readonly lo: Float64Array,
  ) {}

  /** No rows yet. */
  static empty(tokenTypes: readonly string[], dSae: number): FeatureStats {
    const hi = new Float64Array(tokenTypes.length * 7 * dSae);
    for (let t = 0; t < tokenTypes.length; t++) {
      hi.fill(-Infinity, (t * 7 + MAX) * dSae, (t * 7 + MAX + 1) * dSae);
      hi.fill(Infinity, (t * 7 + MIN) * dSae, (t * 7 + MIN + 1) * dSae);
    }
    return new FeatureStats(
      [...tokenTypes],
      dSae,
      new Float64Array(tokenTypes.length),
      hi,
      new Float64Array(hi.length),
    );
  }

  #add(index: number, value: number, valueLo = 0): void {
    // Adding zero leaves a normalised (hi, lo) pair as it is: sparse features skip the arithmetic.
    if (value === 0 && valueLo === 0) return;
    // TwoSum twice, written out: this runs per feature and batch, and tuples would be allocated.
    const a = this.hi[index];
    const s = a + value;
    const sb = s - a;
    const lo = this.lo[index] + ((a - (s - sb)) + (value - sb)) + valueLo;
    const h = s + lo;
    const hb = h - s;
    this.hi[index] = h;
    this.lo[index] = (s - (h - hb)) + (lo - hb);
  }

  /** Σv += S1 + n·c and Σv² += S2 + 2c·S1 + n·c² for partial sums S1, S2 of n values about a shift c. */
  #addShifted(sum: number, sumSq: number, n: number, shift: number, s1: number, s2: number): void {
    // Each term is an exact (or nearly exact) f64 product; the double-double sum takes them one by one.
    this.#add(sum, s1);
    this.#add(sum, n * shift);
    this.#add(sumSq, s2);
    this.#add(sumSq, 2 * shift * s1);
    this.#add(sumSq, n * shift * shift);
  }

  /** Adds `rows` rows per token type to the counts. */
  addCounts(rowsPerType: ArrayLike<number>): void {
    for (let t = 0; t < this.tokenTypes.length; t++) this.count[t] += rowsPerType[t];
  }

  /**
   * Adds one batch's partials for features [offset, offset + cols): `partials` is [types, 9, cols] as
   * feature_stats.wgsl writes it (sums of deviations from a shift c, then c for all rows and c' for
   * the active rows), `rows[t]` the batch's rows of type t. Σv = S1 + n·c and
   * Σv² = S2 + 2c·S1 + n·c², formed in f64. The CPU encoder passes the same layout in f64.
   */
  addPartials(partials: Float32Array | Float64Array, offset: number, cols: number, rows: ArrayLike<number>): void {
    for (let t = 0; t < this.tokenTypes.length; t++) {
      if (!rows[t]) continue;
      const at = (a: number, c: number) => partials[(t * PARTIAL_ROWS + a) * cols + c];
      const to = (a: number) => (t * 7 + a) * this.dSae + offset;
      for (let c = 0; c < cols; c++) {
        const active = at(3, c);
        this.#addShifted(to(0) + c, to(1) + c, rows[t], at(7, c), at(0, c), at(1, c));
        this.#addShifted(to(4) + c, to(5) + c, active, at(8, c), at(4, c), at(5, c));
        this.#add(to(3) + c, active);
        this.hi[to(MAX) + c] = Math.max(this.hi[to(MAX) + c], at(MAX, c));
        this.hi[to(MIN) + c] = Math.min(this.hi[to(MIN) + c], at(MIN, c));
      }
    }
  }

  /** Adds another run's (or shard's) statistics into this one. */
  merge(other: FeatureStats): void {
    if (other.dSae !== this.dSae || other.tokenTypes.join() !== this.tokenTypes.join()) {
      throw new UserError("cannot merge statistics of different SAEs or token types");
    }
    this.addCounts(other.count);
    for (let i = 0; i < this.hi.length; i++) {
      const a = Math.floor(i / this.dSae) % 7;
      if (SUMMED.has(a)) this.#add(i, other.hi[i], other.lo[i]);
      else if (a === MAX) this.hi[i] = Math.max(this.hi[i], other.hi[i]);
      else this.hi[i] = Math.min(this.hi[i], other.hi[i]);
    }
  }

  /** The value of accumulator `a` for token type `t`, feature `j`. */
  value(t: number, a: number, j: number): number {
    const i = (t * 7 + a) * this.dSae + j;
    return this.hi[i] + this.lo[i];
  }

  /** The metrics per token type: means, unbiased standard deviations, sparsity, active statistics. */
  finalize(): Record<string, FeatureMetrics> {
    const out: Record<string, FeatureMetrics> = {};
    this.tokenTypes.forEach((type, t) => {
      const n = this.count[t];
      const m = Object.fromEntries(METRICS.map((k) => [k, new Float64Array(this.dSae)])) as unknown as FeatureMetrics;
      for (let j = 0; j < this.dSae; j++) {
        const sum = this.value(t, 0, j);
        const mean = n ? sum / n : 0;
        m.all_mean[j] = mean;
        m.all_std[j] = n > 1 ? Math.sqrt(Math.max(0, (this.value(t, 1, j) - n * mean * mean) / (n - 1))) : 0;
        m.max[j] = n ? this.value(t, MAX, j) : 0;
        const active = this.value(t, 3, j);
        const activeMean = active ? this.value(t, 4, j) / active : 0;
        m.num_active[j] = active;
        m.sparsity[j] = n ? active / n : 0;
        m.active_mean[j] = activeMean;
        m.active_std[j] = active > 1
          ? Math.sqrt(Math.max(0, (this.value(t, 5, j) - active * activeMean * activeMean) / (active - 1)))
          : 0;
        m.active_min[j] = active ? this.value(t, MIN, j) : 0;
      }
      out[type] = m;
    });
    return out;
  }

  /** F64 tensors for a stats file or checkpoint: counts, and hi/lo per token type. */
  toTensors(): Record<string, TensorToWrite> {
    const tensors: Record<string, TensorToWrite> = {
      count: { dtype: "F64", shape: [this.tokenTypes.length], data: this.count },
    };
    this.tokenTypes.forEach((type, t) => {
      const slice = (a: Float64Array) => a.slice(t * 7 * this.dSae, (t + 1) * 7 * this.dSae);
      tensors[`${type}.accumulators`] = { dtype: "F64", shape: [7, this.dSae], data: slice(this.hi) };
      tensors[`${type}.accumulators_lo`] = { dtype: "F64", shape: [7, this.dSae], data: slice(this.lo) };
    });
    return tensors;
  }

  /** Rebuilds statistics from {@linkcode toTensors}' output. */
  static fromTensors(tokenTypes: readonly string[], dSae: number, read: (name: string) => Float64Array): FeatureStats {
    const stats = FeatureStats.empty(tokenTypes, dSae);
    stats.count.set(read("count"));
    tokenTypes.forEach((type, t) => {
      stats.hi.set(read(`${type}.accumulators`), t * 7 * dSae);
      stats.lo.set(read(`${type}.accumulators_lo`), t * 7 * dSae);
    });
    return stats;
  }

  /** The same statistics, independent of this object. */
  clone(): FeatureStats {
    return new FeatureStats([...this.tokenTypes], this.dSae, this.count.slice(), this.hi.slice(), this.lo.slice());
  }
}
