/**
 * A persistent key → bytes store: what a page keeps across reloads (the origin-private file system,
 * web/platform/opfs.ts). The core keys what it keeps by content, so a stale entry is never found.
 *
 * @module
 */

/** Bytes under string keys, each written whole. */
export interface ByteStore {
  get(key: string): Promise<Uint8Array | undefined>;
  /** Writes `key` whole: a reader (or a reload) never sees half of it. */
  put(key: string, bytes: Uint8Array): Promise<void>;
  remove(key: string): Promise<void>;
  keys(): Promise<string[]>;
  /** Bytes held. */
  size(): Promise<number>;
  clear(): Promise<void>;
}
