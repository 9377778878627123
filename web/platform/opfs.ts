/// <reference lib="dom" />
/// <reference lib="dom.asynciterable" />
/**
 * A key → bytes store in the origin-private file system (`navigator.storage.getDirectory()`): the page's
 * persistent cache of converted weights, rewritten graphs and run checkpoints. Each cache kind is one
 * folder under `model-diff/`. A put writes `<name>.tmp` and then moves it onto its name, so a reload
 * mid-write never leaves half a value under a key; a `.tmp` left by such a reload is removed when the
 * store is opened.
 *
 * @module
 */

import type { ByteStore } from "../engine_api.ts";

/** The folder under the origin-private root that holds every cache kind. */
export const CACHE_ROOT = "model-diff";

const TMP = ".tmp";

/** `move()` of a file handle, which the DOM typings lack. */
interface MovableHandle extends FileSystemFileHandle {
  move(parent: FileSystemDirectoryHandle, name: string): Promise<void>;
}

/** A key's file name: percent-encoded, dots included, so no key collides with `.tmp`, `.` or `..`. */
function nameOf(key: string): string {
  if (!key) throw new Error("a cache key must not be empty");
  return encodeURIComponent(key).replaceAll(".", "%2E");
}

async function cacheRoot(): Promise<FileSystemDirectoryHandle> {
  const root = await navigator.storage.getDirectory();
  return await root.getDirectoryHandle(CACHE_ROOT, { create: true });
}

/** Bytes held by the files under `dir`, recursively. */
async function bytesUnder(dir: FileSystemDirectoryHandle): Promise<number> {
  let total = 0;
  for await (const handle of dir.values()) {
    if (handle.kind === "file") total += (await (handle as FileSystemFileHandle).getFile()).size;
    else total += await bytesUnder(handle as FileSystemDirectoryHandle);
  }
  return total;
}

/** The store for cache kind `kind`, created if missing; leftover `.tmp` files are removed. */
export async function openStore(kind: string): Promise<ByteStore> {
  const dir = await (await cacheRoot()).getDirectoryHandle(nameOf(kind), { create: true });
  const names = async () => {
    const out: string[] = [];
    for await (const name of dir.keys()) out.push(name);
    return out;
  };
  for (const name of await names()) if (name.endsWith(TMP)) await dir.removeEntry(name);
  const missing = (error: unknown) => error instanceof DOMException && error.name === "NotFoundError";
  return {
    async get(key) {
      try {
        const file = await (await dir.getFileHandle(nameOf(key))).getFile();
        return new Uint8Array(await file.arrayBuffer());
      } catch (error) {
        if (missing(error)) return undefined;
        throw error;
      }
    },
    async put(key, bytes) {
      const name = nameOf(key);
      const tmp = await dir.getFileHandle(name + TMP, { create: true }) as MovableHandle;
      const writable = await tmp.createWritable();
      try {
        await writable.write(bytes as Uint8Array<ArrayBuffer>);
        await writable.close();
      } catch (error) {
        await writable.abort().catch(() => {});
        await dir.removeEntry(name + TMP).catch(() => {});
        throw error;
      }
      await tmp.move(dir, name);
    },
    async remove(key) {
      await dir.removeEntry(nameOf(key)).catch((error) => {
        if (!missing(error)) throw error;
      });
    },
    async keys() {
      return (await names()).filter((n) => !n.endsWith(TMP)).map(decodeURIComponent).sort();
    },
    size: () => bytesUnder(dir),
    async clear() {
      for (const name of await names()) await dir.removeEntry(name, { recursive: true });
    },
  };
}

/** Bytes held by every cache kind together. */
export async function cacheSize(): Promise<number> {
  return await bytesUnder(await cacheRoot());
}

/** Removes every cache kind. */
export async function clearCaches(): Promise<void> {
  const root = await navigator.storage.getDirectory();
  await root.removeEntry(CACHE_ROOT, { recursive: true }).catch((error) => {
    if (!(error instanceof DOMException && error.name === "NotFoundError")) throw error;
  });
}
