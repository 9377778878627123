/**
 * SAE encoding on the GPU (shaders/sae_encode.wgsl), the top-k of TopK SAEs (shaders/top_k.wgsl) and
 * the feature statistics of each batch (shaders/feature_stats.wgsl), recorded into one command buffer
 * per batch so only the small partials (or the activations, for {@linkcode GpuSaeEncoder.encode}) come
 * back.
 *
 * W_enc is uploaded once, split into column chunks that each fit the adapter's
 * maxStorageBufferBindingSize (a 4096 x 131072 f32 encoder is 2 GiB; Mesa allows 128 MiB per
 * binding), and kept as f16 (2 bytes per weight) when every weight is exactly an f16, as the weights
 * of F16 and of most BF16 SAE files are; only one chunk is ever copied in JS memory besides the SAE's
 * own weights. Every chunk writes its columns into one [rows, d_sae] buffer, on which top-k and the
 * statistics then run whole.
 *
 * @module
 */

import type { Gpu } from "../backend/gpu_info.ts";
import type { Sae } from "../sae/config.ts";
import { type FeatureStats, rowsPerType } from "../features/stats.ts";
import { type RowExamples, rowExamplesSlice, type TopExamples } from "../features/top_examples.ts";
import { DEFAULT_QUEUE_BYTES, PartialsQueue } from "./feature_stats.ts";
import { encodePrepareInput, NO_BAD_ROW } from "./sae_input.ts";
import { checkInputShape, type FeatureEncoder, nonFiniteRow, rowGroups } from "../sae/feature_encoder.ts";
import { dispatch, pipeline, readBackAll, storageBuffer, uniformBuffer } from "./shader.ts";
import { encodeTopK } from "./top_k.ts";
import { TopRowLists } from "./top_rows.ts";

const ACTIVATION_CODE = { none: 0, relu: 1, jumprelu: 2, gated: 3 } as const;
/** The shader's inner slab depth (KT) and threads per workgroup, each owning 16 columns. */
const SLAB = 32;
const THREADS = 64;
const COLUMNS_PER_THREAD = 16;
/** The most rows one workgroup takes (the shader's accumulators). */
const MAX_TILE_ROWS = 16;

/** How W_enc is stored on the GPU. */
export type WeightType = "f32" | "f16";

interface Chunk {
  offset: number;
  cols: number;
  /** 16-byte words per row of the padded weights. */
  rowWords: number;
  weights: GPUBuffer;
  bias: GPUBuffer;
  threshold: GPUBuffer;
  /** Gated SAEs: (scale, bias) of the magnitude path per column; a placeholder otherwise. */
  magnitude: GPUBuffer;
}

/** Options of {@linkcode GpuSaeEncoder.create}. */
export interface EncoderOptions {
  /** Largest W_enc chunk in bytes (default: the adapter's binding limit). */
  maxChunkBytes?: number;
  /** "auto" (default): f16 when every weight is exactly an f16, else f32; "f32": always f32. */
  weights?: "auto" | "f32";
  /**
   * Most rows per workgroup, 1 to 16. Default: 16 on a software adapter, where each thread's loads are
   * dear and more rows amortise them; 4 on a GPU, where 16 rows x 16 columns of accumulators would
   * spill registers (not measured on a GPU yet).
   */
  maxTileRows?: number;
  /**
   * Bytes of per-batch statistics partials kept on the device before they are read back (default
   * {@linkcode DEFAULT_QUEUE_BYTES}; at least one batch's).
   */
  queueBytes?: number;
}

/** Whether every value is exactly representable as an f16 (stops at the first that is not). */
export function isExactF16(values: Float32Array): boolean {
  for (let i = 0; i < values.length; i++) if (Math.f16round(values[i]) !== values[i]) return false;
  return true;
}

/** One column chunk of W_enc as a row-major [rows, padded] block, ready to upload. */
export interface WEncChunk {
  /** Its first column in W_enc, and how many columns it holds. */
  offset: number;
  cols: number;
  /** Columns per block row: `cols` rounded up to the layout's column multiple (zeros past `cols`). */
  padded: number;
  block: Float32Array | Float16Array;
}

/** How {@linkcode wEncChunks} lays W_enc out. */
export interface WEncLayout {
  weightType: WeightType;
  /** The most bytes one block may take (a storage binding). */
  limitBytes: number;
  /** Rows per block, at least d_in; rows past d_in are zeros. */
  rows: number;
  /** Block rows are padded with zero columns to a multiple of this. */
  columnMultiple: number;
}

/**
 * W_enc ([d_in, d_sae] row-major) in column chunks of a multiple of 64 columns that each fit
 * `limitBytes`, one block at a time so only one chunk is ever copied besides the SAE's own weights.
 * The encoder uploads these; the benchmark hands the same chunks to onnxruntime-web's MatMul, so
 * both peers bind W under the same limit.
 */
export function* wEncChunks(sae: Sae, layout: WEncLayout): Generator<WEncChunk> {
  const { dIn, dSae } = sae.config;
  const bytes = layout.weightType === "f16" ? 2 : 4;
  const perChunk = Math.max(64, Math.floor(layout.limitBytes / (layout.rows * bytes) / 64) * 64);
  for (let offset = 0; offset < dSae; offset += perChunk) {
    const cols = Math.min(perChunk, dSae - offset);
    const padded = Math.ceil(cols / layout.columnMultiple) * layout.columnMultiple;
    const size = layout.rows * padded;
    const block = layout.weightType === "f16" ? new Float16Array(size) : new Float32Array(size);
    for (let i = 0; i < dIn; i++) block.set(sae.wEnc.subarray(i * dSae + offset, i * dSae + offset + cols), i * padded);
    yield { offset, cols, padded, block };
  }
}

/** An SAE's encoder resident on the GPU. */
export class GpuSaeEncoder implements FeatureEncoder {
  private constructor(
    readonly gpu: Gpu,
    readonly sae: Sae,
    /** How W_enc is stored on the GPU. */
    readonly weightType: WeightType,
    private readonly chunks: Chunk[],
    private readonly maxTileRows: number,
    /** b_dec, which the input pass subtracts for formats that apply it. */
    private readonly bDec: GPUBuffer,
    /** Bytes of statistics partials held on the device between read-backs. */
    readonly queueBytes: number,
  ) {}

  #queue: PartialsQueue | undefined;
  /** The running top rows on the device, and the lists they are read back into. */
  #lists: TopRowLists | undefined;
  #listsTarget: TopExamples | undefined;

  /** Uploads `sae`'s encoder in chunks. */
  static async create(gpu: Gpu, sae: Sae, options: EncoderOptions = {}): Promise<GpuSaeEncoder> {
    const weightType: WeightType = options.weights !== "f32" && isExactF16(sae.wEnc) ? "f16" : "f32";
    const bytes = weightType === "f16" ? 2 : 4;
    const limit = Math.min(options.maxChunkBytes ?? Infinity, gpu.maxStorageBufferBindingSize, gpu.maxBufferSize);
    // Zero rows below dIn and zero columns past cols: the padding the shader relies on.
    const rows = paddedInner(sae.config.dIn);
    const layout = { weightType, limitBytes: limit, rows, columnMultiple: COLUMNS_PER_THREAD };
    const chunks: Chunk[] = [];
    for (const { offset, cols, padded, block } of wEncChunks(sae, layout)) {
      chunks.push({
        offset,
        cols,
        rowWords: (padded * bytes) / 16,
        weights: storageBuffer(gpu, block),
        bias: storageBuffer(gpu, sae.bEnc.subarray(offset, offset + cols)),
        threshold: storageBuffer(gpu, sae.threshold.subarray(offset, offset + cols)),
        magnitude: storageBuffer(gpu, sae.magnitude ? magnitudePairs(sae.magnitude, offset, cols) : 8),
      });
    }
    const maxTileRows = Math.min(MAX_TILE_ROWS, Math.max(1, options.maxTileRows ?? (gpu.isSoftware ? 16 : 4)));
    const bDec = storageBuffer(gpu, sae.bDec);
    const queueBytes = options.queueBytes ?? DEFAULT_QUEUE_BYTES;
    const created = new GpuSaeEncoder(gpu, sae, weightType, chunks, maxTileRows, bDec, queueBytes);
    await created.#pipeline(maxTileRows);
    await pipeline(gpu, "sae_input");
    await pipeline(gpu, "feature_stats");
    await pipeline(gpu, "top_rows");
    if (sae.config.architecture === "topk") await pipeline(gpu, "top_k");
    return created;
  }

  /** How many chunks W_enc was split into. */
  get chunkCount(): number {
    return this.chunks.length;
  }

  #pipeline(tileRows: number): Promise<GPUComputePipeline> {
    return pipeline(this.gpu, "sae_encode", { ROWS: tileRows, HALF: this.weightType === "f16" ? 1 : 0 });
  }

  /** Rows per [rows, d_sae] activation buffer: as many as one storage binding holds. */
  get #groupRows(): number {
    const limit = Math.min(this.gpu.maxStorageBufferBindingSize, this.gpu.maxBufferSize);
    return Math.max(1, Math.floor(limit / (this.sae.config.dSae * 4)));
  }

  /** Input rows [from, from + rows) of `x` uploaded into a zeroed buffer padded to the shader's inner slab. */
  #upload(x: Float32Array, from: number, rows: number): GPUBuffer {
    const { dIn } = this.sae.config;
    const inner = paddedInner(dIn);
    const input = new Float32Array(rows * inner);
    for (let r = 0; r < rows; r++) input.set(x.subarray((from + r) * dIn, (from + r + 1) * dIn), r * inner);
    return storageBuffer(this.gpu, input);
  }

  /**
   * Records, on `commands`, the preparation of `input` ([rows, inner]: finite check into word `slot` of
   * `bad`, b_dec subtracted where the format says), every chunk into a new [rows, d_sae] buffer, then
   * top-k for TopK SAEs. Returns that buffer and the buffers to free after submission.
   */
  async #record(commands: GPUCommandEncoder, input: GPUBuffer, rows: number, bad: { buffer: GPUBuffer; slot: number }) {
    const { dIn, dSae, architecture, k, applyBDecToInput } = this.sae.config;
    const temporary = [input];
    temporary.push(
      await encodePrepareInput(
        this.gpu,
        commands,
        { x: input, bDec: this.bDec, bad: bad.buffer },
        { rows, dIn, inner: paddedInner(dIn) },
        { subtract: applyBDecToInput, slot: bad.slot },
      ),
    );
    const out = storageBuffer(this.gpu, rows * dSae * 4, true);
    // As few row tiles as the tile height allows, shared out evenly: 37 rows are 3 tiles of 13.
    const tileRows = Math.ceil(rows / Math.ceil(rows / this.maxTileRows));
    const pipe = await this.#pipeline(tileRows);
    // Top-k needs whole rows: the chunks write pre-activations, top_k ReLUs what it keeps.
    const activation = architecture === "topk" ? "none" : architecture;
    for (const chunk of this.chunks) {
      const params = uniformBuffer(this.gpu, [
        rows,
        paddedInner(dIn),
        chunk.cols,
        ACTIVATION_CODE[activation],
        dSae,
        chunk.offset,
        chunk.rowWords,
      ]);
      temporary.push(params);
      const bindings = [input, chunk.weights, chunk.bias, chunk.threshold, out, params, chunk.magnitude];
      dispatch(this.gpu, commands, pipe, bindings, [
        Math.ceil(rows / tileRows),
        Math.ceil(chunk.cols / (COLUMNS_PER_THREAD * THREADS)),
      ]);
    }
    if (architecture === "topk") temporary.push(await encodeTopK(this.gpu, commands, out, rows, dSae, k ?? 0));
    return { out, temporary };
  }

  /** Feature activations of `rows` input vectors ([rows, dIn] row-major): [rows, dSae]. */
  async encode(x: Float32Array, rows: number): Promise<Float32Array> {
    const { dSae } = this.sae.config;
    checkInputShape(this.sae, x, rows);
    const result = new Float32Array(rows * dSae);
    for (const [from, n] of rowGroups(rows, this.#groupRows)) {
      const commands = this.gpu.device.createCommandEncoder();
      const bad = storageBuffer(this.gpu, new Uint32Array([NO_BAD_ROW]), true);
      const { out, temporary } = await this.#record(commands, this.#upload(x, from, n), n, { buffer: bad, slot: 0 });
      const [values, badRow] = await readBackAll(this.gpu, commands, [
        { buffer: out, bytes: n * dSae * 4 },
        { buffer: bad, bytes: 4 },
      ]);
      for (const buffer of [out, bad, ...temporary]) buffer.destroy();
      const row = new Uint32Array(badRow)[0];
      if (row !== NO_BAD_ROW) throw nonFiniteRow(from + row);
      result.set(new Float32Array(values), from * dSae);
    }
    return result;
  }

  /**
   * Encodes `rows` vectors and adds their statistics to `stats` before it returns; their top
   * activations reach `examples` at {@linkcode flush} (the lists are large: k per feature and type).
   * `rowType[r]` is row r's token type index. Activations stay on the GPU; only [types, 9, d_sae]
   * partials are read back, one submit per batch (per group of rows that one storage binding holds).
   */
  async encodeInto(
    x: Float32Array,
    rows: number,
    rowType: Uint32Array,
    stats: FeatureStats,
    examples?: RowExamples,
  ): Promise<void> {
    checkInputShape(this.sae, x, rows);
    for (const [from, n] of rowGroups(rows, this.#groupRows)) {
      const group = { rowType: rowType.subarray(from, from + n), firstRow: from, stats };
      await this.#enqueue(this.#upload(x, from, n), n, { ...group, examples: rowExamplesSlice(examples, from, n) });
      await this.#queue!.flush();
    }
  }

  /**
   * Encodes rows gathered on the GPU from `source`, a buffer on this process's shared device (a
   * model's residual output kept there): row r is the `dIn` floats starting at float `rowStarts[r]`.
   * Each batch is one submit; its statistics (and top rows) stay on the device and reach `stats` (and
   * `examples`) at the latest at {@linkcode flush}, which a caller must await before reading them.
   */
  async encodeGatheredInto(
    source: GPUBuffer,
    rowStarts: readonly number[],
    rowType: Uint32Array,
    stats: FeatureStats,
    examples?: RowExamples,
  ): Promise<void> {
    const { dIn } = this.sae.config;
    const inner = paddedInner(dIn);
    const rows = rowStarts.length;
    if (rowType.length !== rows) throw new Error(`expected ${rows} row types, got ${rowType.length}`);
    for (const [from, n] of rowGroups(rows, this.#groupRows)) {
      const input = storageBuffer(this.gpu, n * inner * 4);
      const gather = this.gpu.device.createCommandEncoder();
      for (let r = 0; r < n; r++) {
        const start = rowStarts[from + r];
        if (start < 0 || (start + dIn) * 4 > source.size) throw new Error(`row ${from + r} lies outside its source`);
        gather.copyBufferToBuffer(source, start * 4, input, r * inner * 4, dIn * 4);
      }
      const group = { rowType: rowType.subarray(from, from + n), firstRow: from, stats };
      await this.#enqueue(input, n, { ...group, examples: rowExamplesSlice(examples, from, n) }, gather);
    }
  }

  /**
   * Records one group of prepared-to-be rows (encode, top-k, statistics into the next queue slot, the
   * running top rows) on `commands` (or a new one) and submits it; flushes first when the queue is full.
   */
  async #enqueue(
    input: GPUBuffer,
    rows: number,
    group: { rowType: Uint32Array; firstRow: number; stats: FeatureStats; examples?: RowExamples },
    commands = this.gpu.device.createCommandEncoder(),
  ): Promise<void> {
    const { rowType, firstRow, stats, examples } = group;
    const types = stats.tokenTypes.length;
    if (this.#queue?.types !== types) {
      await this.flush();
      this.#queue?.destroy();
      this.#queue = new PartialsQueue(this.gpu, this.sae.config.dSae, types, this.queueBytes);
    }
    const queue = this.#queue;
    if (queue.full) {
      // The work recorded so far waits: a flush submits its own commands first.
      await queue.flush();
    }
    const perType = rowsPerType(rowType, types);
    const { out, temporary } = await this.#record(commands, input, rows, { buffer: queue.bad, slot: queue.nextSlot });
    const rowTypes = storageBuffer(this.gpu, rowType);
    temporary.push(await queue.record(commands, { features: out, rowTypes, rows, perType, firstRow }, stats));
    if (examples) {
      if (examples.promptOfRow.length !== rows) throw new Error(`expected ${rows} row prompts`);
      const lists = await this.#listsFor(examples.examples);
      const rowPrompts = storageBuffer(this.gpu, examples.promptOfRow);
      temporary.push(rowPrompts, await lists.record(commands, { features: out, rowTypes, rowPrompts, rows }));
    }
    this.gpu.device.queue.submit([commands.finish()]);
    for (const buffer of [out, rowTypes, ...temporary]) buffer.destroy();
  }

  /**
   * The device lists that collect into `target`: the current ones, unless they collect into other
   * lists (those are read back into theirs first) or have another shape.
   */
  async #listsFor(target: TopExamples): Promise<TopRowLists> {
    if (this.#lists && this.#listsTarget === target) return this.#lists;
    if (this.#listsTarget) await this.#lists?.flushInto(this.#listsTarget);
    if (!this.#lists?.fits(target)) {
      this.#lists?.destroy();
      this.#lists = new TopRowLists(this.gpu, target.tokenTypes, target.dSae, target.k);
    }
    this.#listsTarget = target;
    return this.#lists;
  }

  /** Adds the statistics (and top rows) still held on the device into their {@linkcode FeatureStats} (and lists). */
  async flush(): Promise<void> {
    await this.#queue?.flush();
    if (this.#listsTarget) await this.#lists?.flushInto(this.#listsTarget);
  }

  /** Frees the GPU buffers (statistics not yet flushed are dropped). */
  destroy(): void {
    this.#queue?.destroy();
    this.#lists?.destroy();
    this.bDec.destroy();
    for (const chunk of this.chunks) {
      chunk.weights.destroy();
      chunk.bias.destroy();
      chunk.threshold.destroy();
      chunk.magnitude.destroy();
    }
  }
}

/** Columns [offset, offset + cols) of a gated SAE's magnitude path as the shader's (scale, bias) pairs. */
function magnitudePairs(magnitude: { scale: Float32Array; bias: Float32Array }, offset: number, cols: number) {
  const pairs = new Float32Array(2 * cols);
  for (let c = 0; c < cols; c++) {
    pairs[2 * c] = magnitude.scale[offset + c];
    pairs[2 * c + 1] = magnitude.bias[offset + c];
  }
  return pairs;
}

/** d_in padded to the shader's slab depth (the padding holds zeros). */
function paddedInner(dIn: number): number {
  return Math.ceil(dIn / SLAB) * SLAB;
}
