/// <reference lib="dom" />
/**
 * {@linkcode FileSource}s over files a page was given: the `File`s of a folder picked with
 * `<input type=file webkitdirectory>` (paths relative to the picked folder), or plain picked files (by
 * name). Reads slice the `File`, so a range never reads the rest of a large file.
 *
 * @module
 */

import { UserError } from "../../lib/core/errors.ts";
import type { FileSource } from "../../lib/core/file_source.ts";

/** A FileSource over `files` keyed by relative path; `name` prefixes paths in messages. */
export function mapSource(files: ReadonlyMap<string, Blob>, name: string): FileSource {
  const label = (path: string) => `${name}/${path}`;
  const fileOf = (path: string, what = "file") => {
    const file = files.get(path);
    if (!file) throw new UserError(`${what} not found: ${label(path)}`);
    return file;
  };
  return {
    label,
    size: (path) => Promise.resolve(files.get(path)?.size),
    async read(path, offset, length) {
      const file = fileOf(path);
      if (offset + length > file.size) {
        throw new UserError(
          `${label(path)} ends at byte ${file.size}, before byte ${offset + length}: the file is truncated`,
        );
      }
      return new Uint8Array(await file.slice(offset, offset + length).arrayBuffer());
    },
    async readAll(path, what) {
      return new Uint8Array(await fileOf(path, what).arrayBuffer());
    },
    stamp(path) {
      const file = files.get(path);
      return Promise.resolve(file instanceof File ? `${file.size}:${file.lastModified}` : undefined);
    },
  };
}

/** The path of a folder-input file inside the picked folder: its `webkitRelativePath` less the first part. */
export function relativePath(file: File): string {
  const path = file.webkitRelativePath || file.name;
  const slash = path.indexOf("/");
  return slash < 0 ? path : path.slice(slash + 1);
}

/** The name of the folder a folder input's files came from (undefined for no files). */
export function folderName(files: readonly File[]): string | undefined {
  const path = files[0]?.webkitRelativePath;
  if (!path) return files[0]?.name;
  return path.split("/")[0];
}

/** A FileSource over the files of a picked folder (`<input webkitdirectory>`). */
export function folderSource(files: readonly File[]): FileSource {
  return mapSource(new Map(files.map((f) => [relativePath(f), f])), folderName(files) ?? "folder");
}

/** A FileSource over plain picked files, by name; messages call the folder `name`. */
export function filesSource(files: readonly File[], name = "picked files"): FileSource {
  return mapSource(new Map(files.map((f) => [f.name, f])), name);
}
