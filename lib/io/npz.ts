/**
 * NumPy `.npy` arrays and `.npz` archives (a zip of `.npy` files, as `numpy.savez` writes them), for
 * Gemma Scope's `params.npz`.
 *
 * @module
 */

import { unzipSync, zipSync } from "fflate";
import type { FileSource } from "../core/file_source.ts";
import { UserError } from "../core/errors.ts";
import { toFloat32 } from "./safetensors.ts";

/** A decoded array: f32 data (converted from the stored dtype) and its shape. */
export interface NpyArray {
  data: Float32Array;
  shape: number[];
}

const DESCR_TO_DTYPE: Record<string, string> = { "<f4": "F32", "<f2": "F16", "<f8": "F64" };

/** Parses one `.npy` file (little-endian float, C order). */
export function decodeNpy(bytes: Uint8Array, what: string): NpyArray {
  const magic = new TextDecoder().decode(bytes.subarray(1, 6));
  if (bytes[0] !== 0x93 || magic !== "NUMPY") throw new UserError(`${what} is not a .npy array`);
  const major = bytes[6];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const headerStart = major === 1 ? 10 : 12;
  const header = new TextDecoder().decode(bytes.subarray(headerStart, headerStart + headerLength));
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1] ?? "";
  const fortran = /'fortran_order':\s*True/.test(header);
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1] ?? "";
  const shape = shapeText.split(",").map((s) => s.trim()).filter((s) => s).map(Number);
  const dtype = DESCR_TO_DTYPE[descr];
  if (!dtype || fortran) throw new UserError(`${what} has unsupported layout (${descr}, fortran_order=${fortran})`);
  return { data: toFloat32(dtype, bytes.subarray(headerStart + headerLength), what), shape };
}

/** Encodes an f32 array as `.npy` (version 1.0). */
export function encodeNpy(array: NpyArray): Uint8Array {
  const shape = array.shape.length === 1 ? `(${array.shape[0]},)` : `(${array.shape.join(", ")})`;
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': ${shape}, }`;
  const total = 10 + header.length + 1;
  header += " ".repeat((64 - (total % 64)) % 64) + "\n";
  const head = new Uint8Array(10 + header.length);
  head.set([0x93, ...new TextEncoder().encode("NUMPY"), 1, 0]);
  new DataView(head.buffer).setUint16(8, header.length, true);
  head.set(new TextEncoder().encode(header), 10);
  const out = new Uint8Array(head.length + array.data.byteLength);
  out.set(head);
  out.set(new Uint8Array(array.data.buffer, array.data.byteOffset, array.data.byteLength), head.length);
  return out;
}

/** Reads every array of the `.npz` file `path` of `source`. */
export async function readNpz(source: FileSource, path: string): Promise<Record<string, NpyArray>> {
  const bytes = await source.readAll(path, "file");
  const label = source.label(path);
  let entries: Record<string, Uint8Array>;
  try {
    entries = unzipSync(bytes);
  } catch (error) {
    throw new UserError(`${label} is not a valid .npz archive (${(error as Error).message})`);
  }
  const arrays: Record<string, NpyArray> = {};
  for (const [name, data] of Object.entries(entries)) {
    arrays[name.replace(/\.npy$/, "")] = decodeNpy(data, `${label}:${name}`);
  }
  return arrays;
}

/** `.npz` bytes holding `arrays` uncompressed, as numpy.savez does. */
export function encodeNpz(arrays: Record<string, NpyArray>): Uint8Array {
  const files: Record<string, [Uint8Array, { level: 0 }]> = {};
  for (const [name, array] of Object.entries(arrays)) files[`${name}.npy`] = [encodeNpy(array), { level: 0 }];
  return zipSync(files);
}
