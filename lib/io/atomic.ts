/**
 * Atomic output: everything is written to a temporary sibling and renamed into place, so an
 * interrupted run never leaves a truncated file where a good one was.
 *
 * @module
 */

import { basename, dirname } from "node:path";
import { UserError } from "../core/errors.ts";
import { diskFullError, isDiskFull } from "./disk.ts";

/**
 * This machine in temporary names, beside the process id (an FNV-1a hash of the host name): a cache on
 * a filesystem that several machines share must not take another machine's live build, whose pid means
 * nothing here, for a dead process's leftover.
 */
export const HOST_TAG = (() => {
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(Deno.hostname())) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
  return hash.toString(16).padStart(8, "0");
})();

/** A temporary sibling name of `path`: `<path>.<pid>-<host>.<random>.tmp`. */
function tempName(path: string): string {
  return `${path}.${Deno.pid}-${HOST_TAG}.${crypto.randomUUID().slice(0, 8)}.tmp`;
}

/**
 * Writes `data` to `path` atomically (temp file in the same directory, then rename). A disk that fills
 * meanwhile is a {@linkcode UserError} naming the folder and the file's size; nothing is left behind.
 */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  await Deno.mkdir(dirname(path), { recursive: true });
  const temp = tempName(path);
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  try {
    await Deno.writeFile(temp, bytes);
    await Deno.rename(temp, path);
  } catch (error) {
    await Deno.remove(temp).catch(() => {});
    if (isDiskFull(error)) {
      throw diskFullError(
        dirname(path),
        `writing ${basename(path)}`,
        bytes.length,
        "free some space there or write the results to another folder",
      );
    }
    throw error;
  }
}

/** {@linkcode writeFileAtomic} of pretty-printed JSON. */
export function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  return writeFileAtomic(path, JSON.stringify(value, null, 2) + "\n");
}

/**
 * Fills a directory atomically: `fill` writes into a temporary sibling directory, which then replaces
 * `dir` (any previous content is removed only after the new one is complete).
 */
export async function replaceDirAtomic(dir: string, fill: (tempDir: string) => Promise<void>): Promise<void> {
  await Deno.mkdir(dirname(dir), { recursive: true });
  const temp = tempName(dir);
  await Deno.mkdir(temp, { recursive: true });
  try {
    await fill(temp);
    const old = `${temp}.old`;
    const hadOld = await Deno.rename(dir, old).then(() => true, () => false);
    await Deno.rename(temp, dir);
    if (hadOld) await Deno.remove(old, { recursive: true });
  } catch (error) {
    await Deno.remove(temp, { recursive: true }).catch(() => {});
    throw error;
  }
}

/** Creates output directory `dir` if needed; a file in its place is a {@linkcode UserError}. */
export async function ensureOutDir(dir: string): Promise<void> {
  const existing = await Deno.stat(dir).catch(() => undefined);
  if (existing && !existing.isDirectory) {
    throw new UserError(`--out-dir ${dir} is a file, not a directory: pass a directory (it is created if missing)`);
  }
  await Deno.mkdir(dir, { recursive: true });
}
