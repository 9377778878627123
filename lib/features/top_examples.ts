/**
 * The highest activations of every feature at every read position over a run, each with the global
 * index of the prompt it came from: what a feature dashboard shows as the feature's top examples. The
 * record that collection (CPU and GPU), checkpoints, shard merging and the stats file share, beside
 * {@linkcode FeatureStats}.
 *
 * A list is ordered by value, largest first, ties to the lower prompt index; only positive
 * activations enter. Within one token type each prompt gives one row, so (value, prompt) pairs are
 * distinct and this order is total: the top k of a union is the top k of the parts' top k, and
 * inserting one pair at a time, merging shards or merging lists read back from the GPU all give the
 * same lists whatever the order.
 *
 * @module
 */

import { UserError } from "../core/errors.ts";
import type { TensorToWrite } from "../io/safetensors.ts";

/** The prompt index of an empty slot (its value is -Infinity). */
export const NO_PROMPT = 0xffffffff;

/** Whether (value a, prompt p) ranks before (value b, prompt q): larger value, or equal and lower prompt. */
export function ranksBefore(a: number, p: number, b: number, q: number): boolean {
  return a > b || (a === b && p < q);
}

/** One kept activation. */
export interface TopExample {
  value: number;
  prompt: number;
}

/** Per token type and feature, the `k` highest positive activations and their prompts. */
export class TopExamples {
  private constructor(
    readonly tokenTypes: string[],
    readonly dSae: number,
    readonly k: number,
    /** [types, dSae, k] values, each list sorted; -Infinity in empty slots. */
    readonly values: Float32Array,
    /** [types, dSae, k] global prompt indices; {@linkcode NO_PROMPT} in empty slots. */
    readonly prompts: Uint32Array,
  ) {}

  /** Empty lists of `k` slots. */
  static empty(tokenTypes: readonly string[], dSae: number, k: number): TopExamples {
    if (!Number.isInteger(k) || k < 1) throw new Error(`top examples need k >= 1, got ${k}`);
    const size = tokenTypes.length * dSae * k;
    return new TopExamples(
      [...tokenTypes],
      dSae,
      k,
      new Float32Array(size).fill(-Infinity),
      new Uint32Array(size).fill(NO_PROMPT),
    );
  }

  /** Lists already laid out as {@linkcode values} and {@linkcode prompts} are (sorted, empty slots last). */
  static fromArrays(
    tokenTypes: readonly string[],
    dSae: number,
    k: number,
    values: Float32Array,
    prompts: Uint32Array,
  ): TopExamples {
    const out = TopExamples.empty(tokenTypes, dSae, k);
    if (values.length !== out.values.length || prompts.length !== out.prompts.length) {
      throw new UserError(`top examples need ${tokenTypes.length} x ${dSae} x ${k} entries`);
    }
    out.values.set(values);
    out.prompts.set(prompts);
    return out;
  }

  /**
   * Offers activation `value` of feature `j` at token type `t` from prompt `prompt`: it enters the
   * list when positive and ranked among its k, pushing the last one out. The one insertion routine
   * behind the CPU path, resuming and merging.
   */
  offer(t: number, j: number, value: number, prompt: number): void {
    const v = Math.fround(value);
    if (!(v > 0)) return;
    const { k, values, prompts } = this;
    const start = (t * this.dSae + j) * k;
    let i = start + k - 1;
    if (!ranksBefore(v, prompt, values[i], prompts[i])) return;
    for (; i > start && ranksBefore(v, prompt, values[i - 1], prompts[i - 1]); i--) {
      values[i] = values[i - 1];
      prompts[i] = prompts[i - 1];
    }
    values[i] = v;
    prompts[i] = prompt;
  }

  /**
   * Offers every activation of `rows` encoded rows (`f`: [rows, dSae]); row r is of token type
   * `rowType[r]` and comes from global prompt `promptOfRow[r]`.
   */
  addRows(f: Float32Array, rows: number, rowType: Uint32Array, promptOfRow: Uint32Array): void {
    const d = this.dSae;
    if (f.length < rows * d || rowType.length < rows || promptOfRow.length < rows) {
      throw new Error(`expected ${rows} rows of ${d} activations with their types and prompts`);
    }
    for (let r = 0; r < rows; r++) {
      const [t, prompt, at] = [rowType[r], promptOfRow[r], r * d];
      // Most activations of a trained SAE are 0: only positive ones do any work.
      for (let j = 0; j < d; j++) if (f[at + j] > 0) this.offer(t, j, f[at + j], prompt);
    }
  }

  /** Adds another part's lists (a shard, a checkpoint's continuation, lists read back from the GPU). */
  merge(other: TopExamples): void {
    if (other.dSae !== this.dSae || other.k !== this.k || other.tokenTypes.join() !== this.tokenTypes.join()) {
      throw new UserError("cannot merge top examples of different SAEs, token types or list lengths");
    }
    const lists = this.tokenTypes.length * this.dSae;
    for (let list = 0; list < lists; list++) {
      const t = Math.floor(list / this.dSae);
      const j = list % this.dSae;
      // Sorted with the empty slots last: stop at the first empty one.
      for (let i = list * this.k; i < (list + 1) * this.k && other.prompts[i] !== NO_PROMPT; i++) {
        this.offer(t, j, other.values[i], other.prompts[i]);
      }
    }
  }

  /** The kept examples of feature `j` at token type `t`, best first. */
  list(t: number, j: number): TopExample[] {
    const out: TopExample[] = [];
    for (let i = (t * this.dSae + j) * this.k, end = i + this.k; i < end && this.prompts[i] !== NO_PROMPT; i++) {
      out.push({ value: this.values[i], prompt: this.prompts[i] });
    }
    return out;
  }

  /** Tensors for a stats file or checkpoint: per token type `{type}.top_values` (F32) and `.top_prompts` (U32), [dSae, k]. */
  toTensors(): Record<string, TensorToWrite> {
    const tensors: Record<string, TensorToWrite> = {};
    const size = this.dSae * this.k;
    this.tokenTypes.forEach((type, t) => {
      const shape = [this.dSae, this.k];
      tensors[`${type}.top_values`] = { dtype: "F32", shape, data: this.values.slice(t * size, (t + 1) * size) };
      tensors[`${type}.top_prompts`] = { dtype: "U32", shape, data: this.prompts.slice(t * size, (t + 1) * size) };
    });
    return tensors;
  }

  /** Rebuilds lists from {@linkcode toTensors}' output (`read` gives a tensor's raw bytes). */
  static fromTensors(
    tokenTypes: readonly string[],
    dSae: number,
    k: number,
    read: (name: string) => Uint8Array,
  ): TopExamples {
    const size = dSae * k;
    const values = new Float32Array(tokenTypes.length * size);
    const prompts = new Uint32Array(tokenTypes.length * size);
    tokenTypes.forEach((type, t) => {
      const [v, p] = [read(`${type}.top_values`), read(`${type}.top_prompts`)];
      if (v.byteLength !== size * 4 || p.byteLength !== size * 4) {
        throw new UserError(`the top examples of ${type} do not hold ${dSae} x ${k} entries`);
      }
      // Copied: the bytes need not be 4-byte aligned within their file.
      values.set(new Float32Array(v.slice().buffer), t * size);
      prompts.set(new Uint32Array(p.slice().buffer), t * size);
    });
    return TopExamples.fromArrays(tokenTypes, dSae, k, values, prompts);
  }

  /** The same lists, independent of this object. */
  clone(): TopExamples {
    return new TopExamples([...this.tokenTypes], this.dSae, this.k, this.values.slice(), this.prompts.slice());
  }
}

/** Where an encoder offers the rows it encodes: the lists, and the global prompt index of each row. */
export interface RowExamples {
  examples: TopExamples;
  /** [rows] global prompt index of each row passed to the encoder. */
  promptOfRow: Uint32Array;
}

/** `rows` rows of `examples` from row `from` on (a group of a larger call). */
export function rowExamplesSlice(
  examples: RowExamples | undefined,
  from: number,
  rows: number,
): RowExamples | undefined {
  return examples && { examples: examples.examples, promptOfRow: examples.promptOfRow.subarray(from, from + rows) };
}
