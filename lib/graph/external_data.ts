/**
 * A graph and its external data as bytes, for runtimes that take them in memory (onnxruntime-web):
 * only the byte ranges the graph references are read. Rewrites link the source's whole weight files at
 * their original offsets, so a graph cut after layer L references the first layers' share of a file
 * that holds all of them; reading the whole file would hold the whole model in memory.
 *
 * @module
 */

import { dirname, join } from "node:path";
import { readUserFile } from "../io/files.ts";
import { readRangeInto } from "../io/files.ts";
import { decodeModel, encodeModel, type onnx, proto } from "./onnx.ts";

/** Files whose referenced ranges cover at least this share are read whole (no repacking needed). */
const WHOLE_FILE_SHARE = 0.9;

/** What onnxruntime-web's session options take: the graph bytes and each external file's bytes. */
export interface InMemoryModel {
  model: Uint8Array;
  externalData: { path: string; data: Uint8Array }[];
}

const field = (t: onnx.ITensorProto, key: string) => t.externalData?.find((e) => e.key === key)?.value;

/**
 * Reads the graph at `path` and the external data it references. A file the graph uses only part of
 * is packed: its referenced tensors are read into one buffer (4096-aligned) and their offsets in the
 * graph moved to match.
 */
export async function readModelInMemory(path: string): Promise<InMemoryModel> {
  const bytes = await readUserFile(path, "model file");
  const model = decodeModel(bytes, path);
  const byLocation = new Map<string, onnx.ITensorProto[]>();
  for (const tensor of model.graph.initializer) {
    if (tensor.dataLocation !== proto.TensorProto.DataLocation.EXTERNAL) continue;
    const location = field(tensor, "location")!;
    byLocation.set(location, [...(byLocation.get(location) ?? []), tensor]);
  }
  const externalData: InMemoryModel["externalData"] = [];
  let moved = false;
  for (const [location, tensors] of byLocation) {
    const file = join(dirname(path), location);
    const size = (await Deno.stat(file).catch(() => undefined))?.size;
    const ranges = new Map<number, number>();
    for (const t of tensors) ranges.set(Number(field(t, "offset") ?? 0), Number(field(t, "length")));
    const used = [...ranges.values()].reduce((n, length) => n + length, 0);
    if (size === undefined || used >= size * WHOLE_FILE_SHARE) {
      externalData.push({ path: location, data: await readUserFile(file, "model file") });
      continue;
    }
    // One slot per distinct range (tied weights may share one), in file order.
    const slots = new Map<number, number>();
    let packed = 0;
    for (const offset of [...ranges.keys()].sort((a, b) => a - b)) {
      packed = Math.ceil(packed / 4096) * 4096;
      slots.set(offset, packed);
      packed += ranges.get(offset)!;
    }
    const data = new Uint8Array(packed);
    const handle = await Deno.open(file);
    try {
      for (const [offset, at] of slots) {
        await readRangeInto(handle, offset, data.subarray(at, at + ranges.get(offset)!), file);
      }
    } finally {
      handle.close();
    }
    for (const t of tensors) {
      const at = slots.get(Number(field(t, "offset") ?? 0))!;
      t.externalData = t.externalData!.map((e) => e.key === "offset" ? { key: "offset", value: String(at) } : e);
      if (!field(t, "offset")) t.externalData.push({ key: "offset", value: String(at) });
    }
    externalData.push({ path: location, data });
    moved = true;
  }
  return { model: moved ? encodeModel(model) : bytes, externalData };
}
