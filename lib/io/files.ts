/**
 * Plain file helpers shared by the caches and readers: byte ranges read exactly, and links that
 * avoid a second copy of multi-gigabyte weight files where the filesystem allows.
 *
 * @module
 */

import { join } from "node:path";
import { UserError } from "../core/errors.ts";

/** Reads exactly `length` bytes at `position`; a file that ends first is a {@linkcode UserError} naming `path`. */
export async function readRange(
  file: Deno.FsFile,
  position: number,
  length: number,
  path: string,
): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  await readRangeInto(file, position, out, path);
  return out;
}

/** Fills `target` with the bytes at `position` (no copy of its own); a file that ends first is a {@linkcode UserError}. */
export async function readRangeInto(
  file: Deno.FsFile,
  position: number,
  target: Uint8Array,
  path: string,
): Promise<void> {
  await file.seek(position, Deno.SeekMode.Start);
  for (let read = 0; read < target.length;) {
    const n = await file.read(target.subarray(read));
    if (n === null) throw new UserError(`${path} is truncated`);
    read += n;
  }
}

/** Writes all of `bytes` at `position`. */
export async function writeRange(file: Deno.FsFile, position: number, bytes: Uint8Array): Promise<void> {
  await file.seek(position, Deno.SeekMode.Start);
  for (let written = 0; written < bytes.length;) written += await file.write(bytes.subarray(written));
}

/**
 * Makes `to` show the bytes of `from`: a hard link, else a symbolic link, else a copy. A `from` that is
 * itself a symbolic link (the Hugging Face hub cache stores every file as a relative link into
 * `../../blobs/`) is resolved first: link(2) would link the link, whose relative target points nowhere
 * from inside the cache, and a relative path would not survive the move into place either.
 */
export async function linkFile(from: string, to: string): Promise<void> {
  const target = await Deno.realPath(from);
  try {
    await Deno.link(target, to);
  } catch {
    try {
      await Deno.symlink(target, to);
    } catch {
      await Deno.copyFile(target, to);
    }
  }
}

/**
 * The names of the regular files directly in `dir`, symbolic links to regular files included (a hub
 * snapshot holds nothing else); links that point nowhere and directories are left out.
 */
export async function regularFiles(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile) names.push(entry.name);
    else if (entry.isSymlink && await Deno.stat(join(dir, entry.name)).then((s) => s.isFile, () => false)) {
      names.push(entry.name);
    }
  }
  return names.sort();
}

/** Reads a file the user named; a missing one is a {@linkcode UserError} calling it `what`. */
export async function readUserFile(path: string, what: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) throw new UserError(`${what} not found: ${path}`);
    throw error;
  }
}
