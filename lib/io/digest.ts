/**
 * Digests: what determines a piece of content, as one SHA-256. Every cache, checkpoint, shard and
 * report is keyed by such digests so a stale or foreign input is refused instead of silently reused.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { fileState, memoByFile } from "./file_memo.ts";
import { sampledArrayDigest, sha256Hex } from "../core/sha256.ts";

export { sampledArrayDigest, sha256Hex };

/** Bytes read per step when hashing a file: large enough for throughput, small beside any model. */
const READ_BYTES = 8 * 1024 * 1024;

/** A file's content digest and where it lies (the latter only for machine-local caches). */
export interface FileIdentity {
  /** SHA-256 of the whole file. */
  digest: string;
  size: number;
  path: string;
  mtimeMs: number;
}

/** SHA-256 of every byte of the file at `path`, read in steps. */
async function hashFile(path: string): Promise<string> {
  const hash = createHash("sha256");
  const file = await Deno.open(path);
  try {
    const buffer = new Uint8Array(READ_BYTES);
    for (let n = await file.read(buffer); n !== null; n = await file.read(buffer)) hash.update(buffer.subarray(0, n));
  } finally {
    file.close();
  }
  return hash.digest("hex");
}

/**
 * The identity of the file at `path`: a hash of all of its bytes, so any changed byte changes it. The
 * file is read once per change (lib/io/file_memo.ts): a warm start only stats it.
 */
export async function fileIdentity(path: string): Promise<FileIdentity> {
  const state = await fileState(path);
  const digest = await memoByFile(path, "sha256", hashFile);
  return { digest, size: state.size, path, mtimeMs: state.mtimeMs };
}

/** A digest of the source text of `modules` (e.g. the code that produced a cached artefact). */
export async function codeDigest(modules: URL[]): Promise<string> {
  return sha256Hex(await Promise.all(modules.map((url) => Deno.readTextFile(url))));
}
