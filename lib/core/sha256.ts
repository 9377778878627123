/**
 * SHA-256 for the platform-neutral core: every fingerprint, identity and cache key the CLI and the
 * page must agree on is one of these, so both compute it with the same code. The CLI hashes whole
 * model files with node:crypto instead (lib/io/digest.ts), which streams several times faster; the
 * digests are the same, SHA-256 being SHA-256.
 *
 * @module
 */

import { sha256 } from "@noble/hashes/sha2.js";
import { UserError } from "./errors.ts";
import type { FileSource } from "./file_source.ts";

const encoder = new TextEncoder();

/** An incremental SHA-256: parts fed one by one, the hex digest at the end. */
export interface Sha256 {
  update(part: Uint8Array | string): Sha256;
  hex(): string;
}

/** Starts an incremental SHA-256. */
export function sha256Stream(): Sha256 {
  const hash = sha256.create();
  const stream: Sha256 = {
    update(part) {
      hash.update(typeof part === "string" ? encoder.encode(part) : part);
      return stream;
    },
    hex: () => Array.from(hash.digest(), (b) => b.toString(16).padStart(2, "0")).join(""),
  };
  return stream;
}

/** SHA-256 of the concatenated parts, as hex. */
export function sha256Hex(parts: (Uint8Array | string)[]): Promise<string> {
  const hash = sha256Stream();
  for (const part of parts) hash.update(part);
  return Promise.resolve(hash.hex());
}

/** A digest of typed arrays by a fixed stride of their elements (plus lengths): cheap for GiB-sized SAEs. */
export async function sampledArrayDigest(arrays: Record<string, Float32Array>, stride = 997): Promise<string> {
  const parts: string[] = [];
  for (const [name, data] of Object.entries(arrays)) {
    const picked = new Float32Array(Math.ceil(data.length / stride) + 1);
    let k = 0;
    for (let i = 0; i < data.length; i += stride) picked[k++] = data[i];
    picked[k] = data[data.length - 1] ?? 0;
    parts.push(`${name}:${data.length}:${await sha256Hex([new Uint8Array(picked.buffer)])}`);
  }
  return sha256Hex([parts.join(";")]);
}

/** Bytes read per step when hashing a whole file of a {@linkcode FileSource}. */
const READ_BYTES = 8 * 1024 * 1024;

/** SHA-256 of every byte of `path` in `source`, read in steps (bounded memory for multi-GB weights). */
export async function sha256OfFile(source: FileSource, path: string): Promise<string> {
  const size = await source.size(path);
  if (size === undefined) throw new UserError(`file not found: ${source.label(path)}`);
  const hash = sha256Stream();
  for (let offset = 0; offset < size; offset += READ_BYTES) {
    hash.update(await source.read(path, offset, Math.min(READ_BYTES, size - offset)));
  }
  return hash.hex();
}
