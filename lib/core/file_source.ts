/**
 * The one way the platform-neutral core reads files: a folder as a {@linkcode FileSource}. The CLI
 * gives a directory on disk (lib/io/fs_source.ts); a browser page gives the files of a folder the user
 * picked, or of a download. Paths inside a source are relative and `/`-separated.
 *
 * @module
 */

import { UserError } from "./errors.ts";

/** A folder of files the core reads. */
export interface FileSource {
  /** How messages name a file of this source: its path as the user would recognise it. */
  label(path: string): string;
  /** The size of `path` in bytes, or undefined when there is no such file. */
  size(path: string): Promise<number | undefined>;
  /** `length` bytes of `path` from `offset`; a file that ends first is a UserError naming it. */
  read(path: string, offset: number, length: number): Promise<Uint8Array>;
  /** Every byte of `path`; a missing file is a UserError calling it `what`. */
  readAll(path: string, what: string): Promise<Uint8Array>;
  /**
   * A cheap token that changes whenever `path` does (its size and modification time), where the
   * platform has one (a page's `File`): keys caches without reading the file. Undefined otherwise.
   */
  stamp?(path: string): Promise<string | undefined>;
}

/**
 * The JSON object in `path` of `source`; a missing file, invalid JSON or another JSON value is a
 * UserError naming the file.
 */
export async function readJsonObjectFrom(source: FileSource, path: string): Promise<Record<string, unknown>> {
  const text = new TextDecoder().decode(await source.readAll(path, "file"));
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new UserError(`${source.label(path)} is not valid JSON (${(error as Error).message})`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new UserError(`${source.label(path)} does not hold a JSON object`);
  }
  return value as Record<string, unknown>;
}

/** One file held in memory, called `name` (a checkpoint read back, a download). */
export function bytesSource(name: string, bytes: Uint8Array): FileSource {
  const check = (path: string) => {
    if (path !== name) throw new UserError(`file not found: ${path}`);
  };
  return {
    label: (path) => path,
    size: (path) => Promise.resolve(path === name ? bytes.length : undefined),
    read(path, offset, length) {
      check(path);
      if (offset + length > bytes.length) throw new UserError(`${name} ends before byte ${offset + length}`);
      return Promise.resolve(bytes.subarray(offset, offset + length));
    },
    readAll(path) {
      check(path);
      return Promise.resolve(bytes);
    },
  };
}
