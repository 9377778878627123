/**
 * Rewritten models on disk, keyed by the source model's identity (graph and weights), the rewrite
 * spec and the rewriting code: a directory in transformers.js layout whose `onnx/model.onnx` is the
 * rewritten graph. Weights in external data are hard-linked when the rewrite keeps them all, else
 * copied tensor by tensor into a compact file (a cut graph needs only the first layers), so they never
 * pass through JS memory whole.
 *
 * @module
 */

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { replaceDirAtomic } from "../io/atomic.ts";
import { linkFile, readRange, writeRange } from "../io/files.ts";
import { encodeModel, type onnx, proto, readModel } from "./onnx.ts";
import { codeDigest, modelIdentity, sha256Hex } from "../identity.ts";
import type { ResidualMap } from "./residuals.ts";
import { rewriteModel, type RewriteSpec } from "./rewrite.ts";

/**
 * The modules whose code determines a rewritten graph. Their source text is part of the cache key, so
 * an upgrade (or a local edit) that changes the rewrite never reuses a graph the old code made.
 */
const REWRITE_SOURCES = ["./rewrite.ts", "./residuals.ts", "./builder.ts", "./onnx.ts", "./cache.ts", "../steering.ts"];

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

let rewriteCode: Promise<string> | undefined;

/** A digest of the rewrite modules' source text. */
export function rewriteCodeDigest(): Promise<string> {
  rewriteCode ??= codeDigest(REWRITE_SOURCES.map((s) => new URL(s, import.meta.url)));
  return rewriteCode;
}

/**
 * The cache key of a rewrite: the source model's identity on this machine (graph, every external data
 * file, config and tokenizer, with paths and modification times), the spec and the rewriting code.
 */
export async function rewriteKey(model: string, spec: RewriteSpec, code: string): Promise<string> {
  return (await sha256Hex([model, JSON.stringify(spec), code])).slice(0, 24);
}

/** Returns the rewritten version of the model in `sourceDir`, building and caching it if needed. */
export async function rewrittenModel(
  sourceDir: string,
  spec: RewriteSpec,
  options: { modelFileName?: string; log?: (line: string) => void } = {},
): Promise<RewrittenModel> {
  const fileName = options.modelFileName ?? "model";
  const graphPath = join(sourceDir, "onnx", `${fileName}.onnx`);
  const identity = await modelIdentity(sourceDir, fileName);
  const key = await rewriteKey(identity.local, spec, await rewriteCodeDigest());
  const dir = join(rewriteCacheRoot(), key);
  const stampPath = join(dir, "rewrite.json");
  const stamp = await Deno.readTextFile(stampPath).then((s) => JSON.parse(s) as { residuals: ResidualMap }, () => null);
  if (stamp) return { dir, residuals: stamp.residuals };

  const model = await readModel(graphPath);
  const residuals = rewriteModel(model, spec);
  options.log?.(`rewriting ${graphPath} (${describeSpec(spec)}) into ${dir}`);
  await replaceDirAtomic(dir, async (temp) => {
    await Deno.mkdir(join(temp, "onnx"));
    await placeExternalData(model.graph, join(sourceDir, "onnx"), join(temp, "onnx"), spec.cut);
    await Deno.writeFile(join(temp, "onnx", "model.onnx"), encodeModel(model));
    for await (const entry of Deno.readDir(sourceDir)) {
      if (entry.isFile) await linkFile(join(sourceDir, entry.name), join(temp, entry.name));
    }
    await Deno.writeTextFile(
      join(temp, "rewrite.json"),
      JSON.stringify({ source: graphPath, model: identity.content, spec, residuals }, null, 2),
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

/**
 * Gives the rewritten graph's external initializers a home in `targetDir`: links to the source files
 * when everything is kept, otherwise (a cut graph) one compact file of what it needs, written tensor
 * by tensor.
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
    for (const location of locations) await linkFile(join(sourceDir, location), join(targetDir, location));
    return;
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
      const buffer = await readRange(source, start, length, join(sourceDir, location));
      offset = Math.ceil(offset / 4096) * 4096;
      await writeRange(out, offset, buffer);
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
