/**
 * Facts derived from a file's bytes (its content hash, the external data files an ONNX graph names),
 * remembered across runs in small stamp files under `.cache/file-memo/`, so a warm start stats its
 * inputs instead of reading and hashing gigabytes again.
 *
 * A stamp holds for one state of the file: its device and inode, size, modification time and status
 * change time (ctime). Any write changes the mtime and the ctime; `touch -d`/`utime` can set the mtime
 * back but not the ctime, and a copy, a re-download or a replace gets a new inode. Deno reports the
 * ctime in whole seconds, so, as git does with its "racy" index entries, a state is only remembered
 * once it is {@linkcode SETTLE_MS} old: a later write then always lands in a later ctime second. A file
 * that changed within that window is simply read again. What remains is a clock that jumps backwards
 * (or a network filesystem whose clock lags this machine's by more than that window) between two
 * writes that keep the size, the inode and a reset mtime. Where the platform reports no ctime, the
 * mtime alone stands guard.
 *
 * @module
 */

import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createHash } from "node:crypto";
import { writeJsonAtomic } from "./atomic.ts";

/** Bump when what a stamp means changes: every stamp of an older version is recomputed. */
const MEMO_VERSION = 1;

/**
 * How old a file state must be before it is remembered: Deno's ctime granularity (1 s), doubled for
 * filesystems with 2 s timestamps.
 */
export const SETTLE_MS = 2000;

/** Where stamps are kept (override with MODEL_DIFF_FILE_MEMO). */
export function fileMemoRoot(): string {
  return Deno.env.get("MODEL_DIFF_FILE_MEMO") ?? fileURLToPath(new URL("../../.cache/file-memo", import.meta.url));
}

/** The state of a file a stamp is valid for. */
export interface FileState {
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
  ctimeMs: number | null;
}

/** The current state of the file at `path`. */
export async function fileState(path: string): Promise<FileState> {
  const s = await Deno.stat(path);
  return {
    dev: s.dev ?? 0,
    ino: s.ino ?? 0,
    size: s.size,
    mtimeMs: s.mtime?.getTime() ?? 0,
    ctimeMs: s.ctime?.getTime() ?? null,
  };
}

interface Stamp<T> {
  version: number;
  kind: string;
  path: string;
  state: FileState;
  value: T;
}

const inProcess = new Map<string, Promise<unknown>>();

/**
 * `compute(path)`'s result for the file at `file` as it is now: from this process's memory, else from
 * its stamp when the file's state is unchanged, else computed and stamped. `kind` names the fact
 * (with a version of its own when its computation changes).
 */
export async function memoByFile<T>(
  file: string,
  kind: string,
  compute: (path: string) => Promise<T>,
): Promise<T> {
  // One stamp per file, however it is named (relative, absolute).
  const path = resolve(file);
  const started = Date.now();
  const state = await fileState(path);
  // A state younger than the timestamps' granularity could hide a second write behind equal stamps.
  if (Math.max(state.ctimeMs ?? 0, state.mtimeMs) + SETTLE_MS > started) return await compute(path);
  const key = JSON.stringify([kind, path, state]);
  let result = inProcess.get(key) as Promise<T> | undefined;
  if (!result) {
    result = lookup(path, kind, state, compute);
    inProcess.set(key, result);
    result.catch(() => inProcess.delete(key));
  }
  return await result;
}

async function lookup<T>(
  path: string,
  kind: string,
  state: FileState,
  compute: (path: string) => Promise<T>,
): Promise<T> {
  const stampPath = join(fileMemoRoot(), `${createHash("sha256").update(`${kind}\0${path}`).digest("hex")}.json`);
  const stamp = await Deno.readTextFile(stampPath).then((s) => JSON.parse(s) as Stamp<T>, () => undefined);
  if (
    stamp && stamp.version === MEMO_VERSION && stamp.kind === kind && stamp.path === path &&
    JSON.stringify(stamp.state) === JSON.stringify(state)
  ) return stamp.value;
  const value = await compute(path);
  // Only a file that did not change while it was read may be stamped with the state seen before.
  if (JSON.stringify(await fileState(path)) === JSON.stringify(state)) {
    // A stamp that cannot be written (a read-only cache) only costs the next run the computation.
    await writeJsonAtomic(stampPath, { version: MEMO_VERSION, kind, path, state, value } satisfies Stamp<T>)
      .catch(() => {});
  }
  return value;
}
