/**
 * Rewritten models on disk, keyed by the source graph's hash and the rewrite spec: a directory in
 * transformers.js layout whose `onnx/model.onnx` is the rewritten graph. Weights in external data are
 * hard-linked when the rewrite keeps them all, else copied tensor by tensor into a compact file
 * (a cut graph needs only the first layers), so they never pass through JS memory whole.
 *
 * @module
 */

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { replaceDirAtomic } from "../io/atomic.ts";
import { decodeModel, encodeModel, type onnx, proto } from "./onnx.ts";
import type { ResidualMap } from "./residuals.ts";
import { rewriteModel, type RewriteSpec } from "./rewrite.ts";

/** Bump when rewriting changes, to invalidate cached models. */
const REWRITE_VERSION = 1;

/** Where rewritten models are kept (override with MODEL_DIFF_CACHE). */
export function rewriteCacheRoot(): string {
  return Deno.env.get("MODEL_DIFF_CACHE") ??
    fileURLToPath(new URL("../../.cache/rewritten", import.meta.url));
}

/** A rewritten model directory and where its residual stream was found. */
export interface RewrittenModel {
  dir: string;
  residuals: ResidualMap;
}

async function sha256Hex(parts: (Uint8Array | string)[]): Promise<string> {
  const chunks = parts.map((p) => (typeof p === "string" ? new TextEncoder().encode(p) : p));
  const total = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const chunk of chunks) {
    total.set(chunk, at);
    at += chunk.length;
  }
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", total));
  return [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Returns the rewritten version of the model in `sourceDir`, building and caching it if needed. */
export async function rewrittenModel(
  sourceDir: string,
  spec: RewriteSpec,
  options: { modelFileName?: string; log?: (line: string) => void } = {},
): Promise<RewrittenModel> {
  const fileName = options.modelFileName ?? "model";
  const graphPath = join(sourceDir, "onnx", `${fileName}.onnx`);
  const bytes = await Deno.readFile(graphPath);
  const key = (await sha256Hex([bytes, JSON.stringify({ REWRITE_VERSION, spec })])).slice(0, 24);
  const dir = join(rewriteCacheRoot(), key);
  const stampPath = join(dir, "rewrite.json");
  const stamp = await Deno.readTextFile(stampPath).then((s) => JSON.parse(s) as { residuals: ResidualMap }, () => null);
  if (stamp) return { dir, residuals: stamp.residuals };

  const model = decodeModel(bytes, graphPath);
  const residuals = rewriteModel(model, spec);
  options.log?.(`rewriting ${graphPath} (${describeSpec(spec)}) into ${dir}`);
  await replaceDirAtomic(dir, async (temp) => {
    await Deno.mkdir(join(temp, "onnx"));
    await placeExternalData(model.graph, join(sourceDir, "onnx"), join(temp, "onnx"), spec.cut);
    await Deno.writeFile(join(temp, "onnx", "model.onnx"), encodeModel(model));
    for await (const entry of Deno.readDir(sourceDir)) {
      if (entry.isFile) await linkOrCopy(join(sourceDir, entry.name), join(temp, entry.name));
    }
    await Deno.writeTextFile(
      join(temp, "rewrite.json"),
      JSON.stringify({ source: graphPath, spec, residuals }, null, 2),
    );
  });
  return { dir, residuals };
}

function describeSpec(spec: RewriteSpec): string {
  const parts = [];
  if (spec.capture.length) parts.push(`capture layers ${spec.capture.join(",")}`);
  if (spec.cut) parts.push("cut after the last captured layer");
  if (spec.steering.length) parts.push(`steering at ${spec.steering.map((s) => `${s.kind}@${s.layer}`).join(",")}`);
  return parts.join("; ") || "unchanged";
}

async function linkOrCopy(from: string, to: string): Promise<void> {
  try {
    await Deno.link(from, to);
  } catch {
    await Deno.copyFile(from, to);
  }
}

/**
 * Gives the rewritten graph's external initializers a home in `targetDir`: hard links to the source
 * files when everything is kept (and the filesystem allows), otherwise one compact file written
 * tensor by tensor.
 */
async function placeExternalData(
  graph: { initializer: onnx.ITensorProto[] },
  sourceDir: string,
  targetDir: string,
  compact: boolean,
): Promise<void> {
  const external = graph.initializer.filter((t) => t.dataLocation === proto.TensorProto.DataLocation.EXTERNAL);
  if (!external.length) return;
  const field = (t: (typeof external)[number], key: string) => t.externalData?.find((e) => e.key === key)?.value;
  const locations = [...new Set(external.map((t) => field(t, "location")!))];
  if (!compact) {
    try {
      for (const location of locations) await Deno.link(join(sourceDir, location), join(targetDir, location));
      return;
    } catch {
      // different filesystem: fall through to copying what is needed
    }
  }
  const out = await Deno.open(join(targetDir, "model.onnx_data"), { write: true, create: true, truncate: true });
  const sources = new Map<string, Deno.FsFile>();
  try {
    let offset = 0;
    for (const tensor of external) {
      const location = field(tensor, "location")!;
      if (!sources.has(location)) sources.set(location, await Deno.open(join(sourceDir, location)));
      const source = sources.get(location)!;
      const start = Number(field(tensor, "offset") ?? 0);
      const length = Number(field(tensor, "length"));
      const buffer = new Uint8Array(length);
      await source.seek(start, Deno.SeekMode.Start);
      for (let read = 0; read < length;) {
        const n = await source.read(buffer.subarray(read));
        if (n === null) throw new Error(`${location} ends before ${tensor.name}'s data`);
        read += n;
      }
      offset = Math.ceil(offset / 4096) * 4096;
      await out.seek(offset, Deno.SeekMode.Start);
      for (let written = 0; written < length;) written += await out.write(buffer.subarray(written));
      tensor.externalData = [
        { key: "location", value: "model.onnx_data" },
        { key: "offset", value: String(offset) },
        { key: "length", value: String(length) },
      ];
      offset += length;
    }
  } finally {
    out.close();
    for (const file of sources.values()) file.close();
  }
}
