/**
 * The safetensors format (https://huggingface.co/docs/safetensors): an 8-byte little-endian header
 * length, a JSON header mapping tensor names to dtype, shape and byte offsets (plus optional string
 * `__metadata__`), then the raw little-endian data. The reader pulls single tensors by offset, so a
 * multi-gigabyte file is never read whole.
 *
 * @module
 */

import { UserError } from "../core/errors.ts";
import type { FileSource } from "../core/file_source.ts";

/** Element types this toolkit reads and writes. */
export type SafetensorsDtype =
  | "F64"
  | "F32"
  | "F16"
  | "BF16"
  | "I64"
  | "I32"
  | "I16"
  | "I8"
  | "U64"
  | "U32"
  | "U16"
  | "U8"
  | "BOOL"
  | "F8_E4M3"
  | "F8_E5M2";

/** Bytes per element of every dtype the format defines (so any valid header parses). */
export const BYTES_PER_ELEMENT: Record<SafetensorsDtype, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
};

/** One tensor's entry in the header. */
export interface TensorInfo {
  dtype: SafetensorsDtype;
  shape: number[];
  data_offsets: [number, number];
}

/** A tensor to write. */
export interface TensorToWrite {
  dtype: SafetensorsDtype;
  shape: number[];
  data: ArrayBufferView;
}

/** Serialises tensors (in the given order) and string metadata to safetensors bytes. */
export function encodeSafetensors(
  tensors: Record<string, TensorToWrite>,
  metadata?: Record<string, string>,
): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, tensor] of Object.entries(tensors)) {
    const count = tensor.shape.reduce((a, b) => a * b, 1);
    const bytes = count * BYTES_PER_ELEMENT[tensor.dtype];
    if (bytes !== tensor.data.byteLength) {
      throw new Error(`tensor ${name}: shape ${tensor.shape} needs ${bytes} bytes, data has ${tensor.data.byteLength}`);
    }
    header[name] = { dtype: tensor.dtype, shape: tensor.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8; // the spec asks for 8-byte alignment of the data
  if (padded !== json.length) {
    json = new TextEncoder().encode(JSON.stringify(header) + " ".repeat(padded - json.length));
  }
  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let at = 8 + json.length;
  for (const tensor of Object.values(tensors)) {
    out.set(new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength), at);
    at += tensor.data.byteLength;
  }
  return out;
}

/**
 * Checks a header's tensors against the format's rules, as the reference implementation
 * (safetensors' `Metadata::validate`) does: a known dtype, a shape of non-negative integers, offsets
 * whose length is dtype size × element count, and, in offset order, tensors that start where the
 * previous one ended (no overlap, no gap) and end exactly at the end of the file. Two tensors sharing
 * bytes would otherwise be read as valid and give different numbers from what was saved.
 */
function checkLayout(tensors: Record<string, unknown>, dataLength: number): void {
  const entries = Object.entries(tensors).map(([name, raw]) => {
    const info = raw as Partial<TensorInfo> | null;
    const offsets = info?.data_offsets;
    const integer = (x: unknown) => typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
    if (!info || typeof info.dtype !== "string" || !(info.dtype in BYTES_PER_ELEMENT)) {
      throw new Error(`tensor ${name} has unknown dtype ${info?.dtype}`);
    }
    if (!Array.isArray(info.shape) || !info.shape.every(integer)) throw new Error(`tensor ${name} has a bad shape`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(integer) || offsets[1] < offsets[0]) {
      throw new Error(`tensor ${name} has bad data_offsets`);
    }
    const expected = info.shape.reduce((a, b) => a * b, 1) * BYTES_PER_ELEMENT[info.dtype];
    if (offsets[1] - offsets[0] !== expected) {
      throw new Error(
        `tensor ${name} spans ${offsets[1] - offsets[0]} bytes but ${info.dtype} [${info.shape}] needs ${expected}`,
      );
    }
    return { name, begin: offsets[0], end: offsets[1] };
  }).sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  for (const { name, begin, end } of entries) {
    if (begin < at) throw new Error(`tensor ${name} overlaps the bytes of another tensor`);
    if (begin > at) throw new Error(`${begin - at} bytes before tensor ${name} belong to no tensor`);
    at = end;
  }
  if (at > dataLength) throw new Error(`its tensors need ${at} bytes of data but it holds ${dataLength}: truncated`);
  if (at < dataLength) throw new Error(`${dataLength - at} bytes after the last tensor belong to no tensor`);
}

/** An open safetensors file: the parsed header, and tensors read on demand. */
export class SafetensorsFile {
  /** How messages name the file. */
  readonly path: string;

  private constructor(
    private readonly source: FileSource,
    private readonly name: string,
    readonly tensors: Record<string, TensorInfo>,
    readonly metadata: Record<string, string>,
    private readonly dataStart: number,
  ) {
    this.path = source.label(name);
  }

  /** Parses the header of `path` in `source`; a malformed file is a {@linkcode UserError}. */
  static async read(source: FileSource, path: string): Promise<SafetensorsFile> {
    const label = source.label(path);
    const size = await source.size(path);
    if (size === undefined) throw new UserError(`file not found: ${label}`);
    try {
      if (size < 8) throw new Error("shorter than its 8-byte header length");
      const prefix = await source.read(path, 0, 8);
      const headerLength = Number(new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true));
      if (headerLength <= 0 || 8 + headerLength > size) throw new Error("header length out of range");
      const header = JSON.parse(
        new TextDecoder("utf-8", { fatal: true }).decode(await source.read(path, 8, headerLength)),
      );
      if (typeof header !== "object" || header === null || Array.isArray(header)) {
        throw new Error("its header is not a JSON object");
      }
      const { __metadata__: metadata = {}, ...tensors } = header as Record<string, unknown>;
      checkLayout(tensors, size - 8 - headerLength);
      return new SafetensorsFile(
        source,
        path,
        tensors as Record<string, TensorInfo>,
        metadata as Record<string, string>,
        8 + headerLength,
      );
    } catch (error) {
      if (error instanceof UserError) throw error;
      throw new UserError(
        `${label} is not a valid safetensors file (${(error as Error).message}): download or save it again`,
      );
    }
  }

  /** Where tensor `name`'s bytes start in the file (header included). */
  fileOffset(name: string): number {
    return this.dataStart + this.info(name).data_offsets[0];
  }

  /** The raw bytes of tensor `name`. */
  bytes(name: string): Promise<Uint8Array> {
    const [begin, end] = this.info(name).data_offsets;
    return this.source.read(this.name, this.dataStart + begin, end - begin);
  }

  /** Tensor `name` converted to f32 (from F32, F16, BF16 or F64). */
  async float32(name: string): Promise<Float32Array> {
    return toFloat32(this.info(name).dtype, await this.bytes(name), `${this.path}:${name}`);
  }

  /** The header entry of `name`; a missing tensor is a {@linkcode UserError} listing what exists. */
  info(name: string): TensorInfo {
    const info = this.tensors[name];
    if (!info) {
      throw new UserError(`${this.path} has no tensor "${name}" (it has: ${Object.keys(this.tensors).join(", ")})`);
    }
    return info;
  }
}

/** Converts little-endian F32/F16/BF16/F64 bytes to a Float32Array. */
export function toFloat32(dtype: string, bytes: Uint8Array, what: string): Float32Array {
  const aligned = bytes.byteOffset % 8 === 0 ? bytes : bytes.slice();
  switch (dtype) {
    case "F32":
      return new Float32Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 4).slice();
    case "F64":
      return Float32Array.from(new Float64Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 8));
    case "F16":
      return Float32Array.from(new Float16Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 2));
    case "BF16": {
      const halves = new Uint16Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 2);
      const words = new Uint32Array(halves.length);
      for (let i = 0; i < halves.length; i++) words[i] = halves[i] << 16;
      return new Float32Array(words.buffer);
    }
    default:
      throw new UserError(`${what} has dtype ${dtype}; expected a floating-point tensor (F32, F16, BF16 or F64)`);
  }
}
