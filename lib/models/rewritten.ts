/**
 * Rewritten models on disk, keyed by the source model's identity (graph and weights), the rewrite
 * spec and the rewriting code: a directory in transformers.js layout whose `onnx/model.onnx` is the
 * rewritten graph. Every rewrite references the same weight bytes: its external data files are hard
 * links to the source's, at the source's offsets (a cut graph simply references fewer tensors), and a
 * graph that holds its weights inline has them moved once into a shared entry keyed by the model's
 * content, which every rewrite of that model links. So capture, cut and steering graphs of one model
 * cost a few graph bytes each, and weights never pass through JS memory whole.
 *
 * @module
 */

import { join } from "node:path";
import { linkFile, regularFiles } from "../io/files.ts";
import { decodeModel, encodeModel, externalDataLocations, externaliseInitializers, type onnx } from "../graph/onnx.ts";
import { readModel } from "../graph/onnx_file.ts";
import { codeDigest, sha256Hex } from "../io/digest.ts";
import { type ModelIdentity, modelIdentity } from "./identity.ts";
import { cacheEntry, cacheRoot, isBookkeepingFile } from "../io/cache_store.ts";
import type { ResidualMap } from "../graph/residuals.ts";
import { rewriteModel, type RewriteSpec } from "../graph/rewrite.ts";

/**
 * The modules whose code determines a rewritten graph. Their source text is part of the cache key, so
 * an upgrade (or a local edit) that changes the rewrite never reuses a graph the old code made.
 */
const REWRITE_SOURCES = [
  "../graph/rewrite.ts",
  "../graph/residuals.ts",
  "../graph/builder.ts",
  "../graph/onnx.ts",
  "./rewritten.ts",
  "../graph/steering.ts",
];

/** Where rewritten models are kept (override with MODEL_DIFF_CACHE). */
export function rewriteCacheRoot(): string {
  return cacheRoot("rewritten");
}

/** The external data file that inline weights are moved into, in a shared entry. */
export const SHARED_DATA = "inline_weights.onnx_data";

/**
 * Graphs with at least this many bytes of inline initializers get them moved into a shared entry;
 * below it (an export that keeps only small constants inline) a copy per rewrite costs less than a file.
 */
const SHARE_INLINE_BYTES = 1 << 20;

/** What a rewritten entry's stamp records. */
interface RewriteStamp {
  /** The source graph. */
  source: string;
  /** The source model's content identity. */
  model: string;
  spec: RewriteSpec;
  residuals: ResidualMap;
  /** The shared entries whose files it links. */
  uses: string[];
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
  options: { modelFileName?: string; identity?: ModelIdentity; log?: (line: string) => void } = {},
): Promise<RewrittenModel> {
  const fileName = options.modelFileName ?? "model";
  const graphPath = join(sourceDir, "onnx", `${fileName}.onnx`);
  // The caller's identity of this very directory and graph, when it has one (see ResolvedModel).
  const identity = options.identity ?? await modelIdentity(sourceDir, fileName);
  const key = await rewriteKey(identity.local, spec, await rewriteCodeDigest());
  const entry = await cacheEntry<RewriteStamp>("rewritten", key, {
    log: options.log,
    uses: (stamp) => stamp.uses,
    fill: async (temp, dir) => {
      let model = await readModel(graphPath);
      let weightsDir = join(sourceDir, "onnx");
      const uses: string[] = [];
      if (inlineBytes(model.graph) >= SHARE_INLINE_BYTES) {
        weightsDir = join(await sharedWeights(identity, graphPath, sourceDir, options.log), "onnx");
        model = decodeModel(await Deno.readFile(join(weightsDir, "model.onnx")), graphPath);
        uses.push(join(weightsDir, ".."));
      }
      const residuals = rewriteModel(model, spec);
      options.log?.(`rewriting ${graphPath} (${describeSpec(spec)}) into ${dir}`);
      await Deno.mkdir(join(temp, "onnx"));
      // Original offsets into the same bytes: a cut graph just references fewer of them.
      for (const location of externalDataLocations(model)) {
        await linkFile(join(weightsDir, location), join(temp, "onnx", location));
      }
      await Deno.writeFile(join(temp, "onnx", "model.onnx"), encodeModel(model));
      for (const name of await regularFiles(sourceDir)) {
        if (!isBookkeepingFile(name)) await linkFile(join(sourceDir, name), join(temp, name));
      }
      return { source: graphPath, model: identity.content, spec, residuals, uses };
    },
  });
  return { dir: entry.dir, residuals: entry.stamp.residuals };
}

function describeSpec(spec: RewriteSpec): string {
  const parts = [];
  if (spec.capture.length) parts.push(`capture layers ${spec.capture.join(",")}`);
  if (spec.cut) parts.push("cut after the last captured layer");
  if (spec.steering.length) parts.push(`steering at ${spec.steering.map((s) => `${s.kind}@${s.layer}`).join(",")}`);
  return parts.join("; ") || "unchanged";
}

/** Bytes of initializer data held inside the graph itself. */
function inlineBytes(graph: { initializer: onnx.ITensorProto[] }): number {
  return graph.initializer.reduce((n, t) => n + (t.rawData?.byteLength ?? 0), 0);
}

/**
 * The shared entry of a model whose weights are inline: its graph with every initializer of at least
 * 1 KiB moved into {@linkcode SHARED_DATA}, and the model's own external data files linked beside it.
 * Keyed by the model's content (wherever it lies) and the moving code; made once.
 */
async function sharedWeights(
  identity: ModelIdentity,
  graphPath: string,
  sourceDir: string,
  log?: (line: string) => void,
): Promise<string> {
  const key = (await sha256Hex([identity.content, await rewriteCodeDigest(), "shared-inline-weights"])).slice(0, 24);
  const entry = await cacheEntry("weights", key, {
    log,
    fill: async (temp, dir) => {
      log?.(`moving the inline weights of ${graphPath} into ${dir}, shared by every rewrite of this model`);
      await Deno.mkdir(join(temp, "onnx"));
      const model = await readModel(graphPath);
      for (const location of externalDataLocations(model)) {
        await linkFile(join(sourceDir, "onnx", location), join(temp, "onnx", location));
      }
      await Deno.writeFile(join(temp, "onnx", SHARED_DATA), externaliseInitializers(model, SHARED_DATA));
      await Deno.writeFile(join(temp, "onnx", "model.onnx"), encodeModel(model));
      return { source: graphPath, model: identity.content };
    },
  });
  return entry.dir;
}
