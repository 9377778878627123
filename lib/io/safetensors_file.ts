/**
 * Safetensors files on disk: opened by path, written atomically (the format itself, on bytes and any
 * {@linkcode FileSource}, is lib/io/safetensors.ts).
 *
 * @module
 */

import { writeFileAtomic } from "./atomic.ts";
import { dirSource } from "./fs_source.ts";
import { encodeSafetensors, SafetensorsFile, type TensorToWrite } from "./safetensors.ts";

/** Opens the safetensors file at `path` and parses its header; a malformed file is a UserError. */
export function openSafetensors(path: string): Promise<SafetensorsFile> {
  return SafetensorsFile.read(dirSource(""), path);
}

/** Writes a safetensors file atomically. */
export function writeSafetensors(
  path: string,
  tensors: Record<string, TensorToWrite>,
  metadata?: Record<string, string>,
): Promise<void> {
  return writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}
