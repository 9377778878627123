/**
 * A directory on disk as a {@linkcode FileSource}: what the CLI hands the core.
 *
 * @module
 */

import { join } from "node:path";
import { UserError } from "../core/errors.ts";
import type { FileSource } from "../core/file_source.ts";
import { readRange, readUserFile } from "./files.ts";

/** The files under `dir` (`""` for paths that are already absolute or relative to the working directory). */
export function dirSource(dir: string): FileSource {
  const at = (path: string) => dir ? join(dir, path) : path;
  return {
    label: at,
    size: (path) => Deno.stat(at(path)).then((s) => s.isFile ? s.size : undefined, () => undefined),
    readAll: (path, what) => readUserFile(at(path), what),
    async read(path, offset, length) {
      let file: Deno.FsFile;
      try {
        file = await Deno.open(at(path));
      } catch (error) {
        if (error instanceof Deno.errors.NotFound) throw new UserError(`file not found: ${at(path)}`);
        throw error;
      }
      try {
        return await readRange(file, offset, length, at(path));
      } finally {
        file.close();
      }
    },
  };
}
