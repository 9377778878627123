/**
 * GGUF, llama.cpp's file format, as far as control vectors need it: write metadata and F32 tensors,
 * read any file's header, metadata and tensor infos, and F32 tensors back. Layout as the GGUF spec
 * (ggml-org/ggml, docs/gguf.md) gives it and as gguf-py's GGUFWriter writes it (header, key/values,
 * tensor infos, padding to the alignment, then each tensor padded to the alignment), little-endian:
 *
 * - header: magic `GGUF`, u32 version (3), u64 tensor count, u64 key/value count;
 * - a string is a u64 byte length and UTF-8 bytes; a key/value is a string key, a u32 value type and the
 *   value (an array: u32 element type, u64 count, elements);
 * - a tensor info is a string name, u32 dimension count, u64 dimensions (ggml order, innermost first),
 *   u32 ggml type (F32 = 0) and a u64 offset into the data section, a multiple of the alignment;
 * - the data section starts at the next multiple of `general.alignment` (default 32).
 *
 * @module
 */

import { UserError } from "../core/errors.ts";

/** GGUF metadata value types (the spec's `gguf_metadata_value_type`). */
export const GGUF_TYPE = {
  uint8: 0,
  int8: 1,
  uint16: 2,
  int16: 3,
  uint32: 4,
  int32: 5,
  float32: 6,
  bool: 7,
  string: 8,
  array: 9,
  uint64: 10,
  int64: 11,
  float64: 12,
} as const;

/** A metadata value's type name. */
export type GgufTypeName = keyof typeof GGUF_TYPE;

/** A metadata value as read: its type and value (64-bit integers as bigint, arrays of values). */
export type GgufValue =
  | { type: "string"; value: string }
  | { type: "bool"; value: boolean }
  | { type: "uint64" | "int64"; value: bigint }
  | { type: "uint8" | "int8" | "uint16" | "int16" | "uint32" | "int32" | "float32" | "float64"; value: number }
  | { type: "array"; value: GgufValue[] };

/** ggml's F32 tensor type. */
export const GGML_TYPE_F32 = 0;

/** The default alignment of the data section and of each tensor (GGUF_DEFAULT_ALIGNMENT). */
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** A tensor's entry in the header. */
export interface GgufTensorInfo {
  name: string;
  /** ggml order: innermost dimension first. */
  dims: number[];
  type: number;
  /** Byte offset in the data section. */
  offset: number;
}

/** A parsed GGUF file. */
export interface GgufFile {
  version: number;
  metadata: Map<string, GgufValue>;
  tensors: GgufTensorInfo[];
  alignment: number;
  /** Byte offset of the data section in the file. */
  dataOffset: number;
  bytes: Uint8Array;
}

const TYPE_NAMES = Object.fromEntries(Object.entries(GGUF_TYPE).map(([name, id]) => [id, name])) as Record<
  number,
  GgufTypeName
>;

const align = (offset: number, alignment: number) => Math.ceil(offset / alignment) * alignment;

/** A byte writer that grows as needed. */
class Writer {
  #bytes = new Uint8Array(1024);
  #view = new DataView(this.#bytes.buffer);
  length = 0;

  #reserve(n: number) {
    if (this.length + n <= this.#bytes.length) return;
    const bigger = new Uint8Array(Math.max(this.#bytes.length * 2, this.length + n));
    bigger.set(this.#bytes);
    this.#bytes = bigger;
    this.#view = new DataView(bigger.buffer);
  }
  u32(value: number) {
    this.#reserve(4);
    this.#view.setUint32(this.length, value, true);
    this.length += 4;
  }
  u64(value: number | bigint) {
    this.#reserve(8);
    this.#view.setBigUint64(this.length, BigInt(value), true);
    this.length += 8;
  }
  bytes(data: Uint8Array) {
    this.#reserve(data.length);
    this.#bytes.set(data, this.length);
    this.length += data.length;
  }
  string(text: string) {
    const data = new TextEncoder().encode(text);
    this.u64(data.length);
    this.bytes(data);
  }
  padTo(alignment: number) {
    const target = align(this.length, alignment);
    this.#reserve(target - this.length);
    this.length = target; // the buffer is zero-filled, so padding is zeros
  }
  result(): Uint8Array {
    return this.#bytes.slice(0, this.length);
  }
}

/** A metadata value to write: strings and u32 are all control vectors need. */
export type GgufWriteValue = { type: "string"; value: string } | { type: "uint32"; value: number };

/**
 * Encodes a GGUF v3 file of `metadata` (in order) and 1-D or N-D F32 `tensors` (dims in ggml order),
 * with the default alignment.
 */
export function encodeGguf(
  metadata: [string, GgufWriteValue][],
  tensors: { name: string; dims: number[]; data: Float32Array }[],
): Uint8Array {
  const w = new Writer();
  w.bytes(new TextEncoder().encode("GGUF"));
  w.u32(3);
  w.u64(tensors.length);
  w.u64(metadata.length);
  for (const [key, value] of metadata) {
    w.string(key);
    w.u32(GGUF_TYPE[value.type]);
    if (value.type === "string") w.string(value.value);
    else w.u32(value.value);
  }
  let offset = 0;
  for (const tensor of tensors) {
    const elements = tensor.dims.reduce((a, b) => a * b, 1);
    if (elements !== tensor.data.length) {
      throw new Error(`${tensor.name}: dims ${tensor.dims} but ${tensor.data.length} values`);
    }
    w.string(tensor.name);
    w.u32(tensor.dims.length);
    for (const dim of tensor.dims) w.u64(dim);
    w.u32(GGML_TYPE_F32);
    w.u64(offset);
    offset = align(offset + tensor.data.byteLength, GGUF_DEFAULT_ALIGNMENT);
  }
  w.padTo(GGUF_DEFAULT_ALIGNMENT);
  for (const tensor of tensors) {
    const little = new Float32Array(tensor.data); // a copy: the view below must start at offset 0
    w.bytes(new Uint8Array(little.buffer, 0, little.byteLength));
    w.padTo(GGUF_DEFAULT_ALIGNMENT);
  }
  return w.result();
}

/** Reads GGUF bytes; anything malformed is a {@linkcode UserError} naming `what`. */
export function decodeGguf(bytes: Uint8Array, what: string): GgufFile {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  const need = (n: number) => {
    if (at + n > bytes.length) throw new UserError(`${what} is truncated (a GGUF header runs past its end)`);
  };
  const u32 = () => (need(4), at += 4, view.getUint32(at - 4, true));
  const u64 = () => {
    need(8);
    const value = view.getBigUint64(at, true);
    at += 8;
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new UserError(`${what}: a GGUF length or count is too large`);
    return Number(value);
  };
  const string = () => {
    const length = u64();
    need(length);
    at += length;
    return new TextDecoder().decode(bytes.subarray(at - length, at));
  };
  const value = (type: number): GgufValue => {
    const name = TYPE_NAMES[type];
    switch (name) {
      case "string":
        return { type: name, value: string() };
      case "bool":
        need(1);
        return { type: name, value: bytes[at++] !== 0 };
      case "uint64":
      case "int64": {
        need(8);
        const v = name === "uint64" ? view.getBigUint64(at, true) : view.getBigInt64(at, true);
        at += 8;
        return { type: name, value: v };
      }
      case "array": {
        const elementType = u32();
        const count = u64();
        const values: GgufValue[] = [];
        for (let i = 0; i < count; i++) values.push(value(elementType));
        return { type: name, value: values };
      }
      case undefined:
        throw new UserError(`${what} has a GGUF metadata value of unknown type ${type}`);
      default: {
        const [size, read] = ({
          uint8: [1, (o: number) => view.getUint8(o)],
          int8: [1, (o: number) => view.getInt8(o)],
          uint16: [2, (o: number) => view.getUint16(o, true)],
          int16: [2, (o: number) => view.getInt16(o, true)],
          uint32: [4, (o: number) => view.getUint32(o, true)],
          int32: [4, (o: number) => view.getInt32(o, true)],
          float32: [4, (o: number) => view.getFloat32(o, true)],
          float64: [8, (o: number) => view.getFloat64(o, true)],
        } as const)[name];
        need(size);
        at += size;
        return { type: name, value: read(at - size) };
      }
    }
  };
  need(4);
  if (new TextDecoder().decode(bytes.subarray(0, 4)) !== "GGUF") throw new UserError(`${what} is not a GGUF file`);
  at = 4;
  const version = u32();
  if (version !== 2 && version !== 3) {
    throw new UserError(`${what} is GGUF version ${version}; versions 2 and 3 are read`);
  }
  const tensorCount = u64();
  const kvCount = u64();
  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < kvCount; i++) {
    const key = string();
    metadata.set(key, value(u32()));
  }
  const tensors: GgufTensorInfo[] = [];
  for (let i = 0; i < tensorCount; i++) {
    const name = string();
    const nDims = u32();
    const dims = Array.from({ length: nDims }, u64);
    tensors.push({ name, dims, type: u32(), offset: u64() });
  }
  const alignmentValue = metadata.get("general.alignment");
  const alignment = alignmentValue?.type === "uint32" ? alignmentValue.value : GGUF_DEFAULT_ALIGNMENT;
  return { version, metadata, tensors, alignment, dataOffset: align(at, alignment), bytes };
}

/** The values of F32 tensor `info` of `file`. */
export function ggufFloat32(file: GgufFile, info: GgufTensorInfo, what: string): Float32Array {
  if (info.type !== GGML_TYPE_F32) {
    throw new UserError(`${what}: tensor ${info.name} is not F32 (ggml type ${info.type})`);
  }
  const count = info.dims.reduce((a, b) => a * b, 1);
  const start = file.dataOffset + info.offset;
  if (start + 4 * count > file.bytes.length) throw new UserError(`${what} is truncated (tensor ${info.name})`);
  // A copy, aligned: the file's bytes need not sit at a multiple of 4.
  return new Float32Array(file.bytes.slice(start, start + 4 * count).buffer);
}
