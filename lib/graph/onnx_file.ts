/**
 * ONNX models read from files (the platform side of lib/graph/onnx.ts, which works on bytes).
 *
 * @module
 */

import { readUserFile } from "../io/files.ts";
import { type DecodedModel, decodeModel } from "./onnx.ts";

/** Reads and decodes an `.onnx` file; external data stays on disk. */
export async function readModel(path: string): Promise<DecodedModel> {
  return decodeModel(await readUserFile(path, "model file"), path);
}
