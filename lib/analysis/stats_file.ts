/**
 * A diff run's statistics files, named in one place, and what they hold: statistics (F64), top
 * examples and the run's metadata, as one type checked once when a file is read (every reader then
 * uses typed fields, never casts). Encoded and decoded here, wherever the bytes live: the CLI's
 * directory (lib/run/stats_files.ts), a page's downloads or its storage.
 *
 * @module
 */

import { UserError } from "../core/errors.ts";
import type { FileSource } from "../core/file_source.ts";
import { encodeSafetensors, SafetensorsFile } from "../io/safetensors.ts";
import { FeatureStats } from "../features/stats.ts";
import { TopExamples } from "../features/top_examples.ts";
import { TOKEN_TYPES, type TokenType } from "../runtime/chat.ts";
import type { GraphDtype } from "../models/decoder_graph.ts";

/** What a collection gathered: statistics, and the top examples when asked for. */
export interface Collected {
  stats: FeatureStats;
  examples?: TopExamples;
}

/** The two models of a diff, in file-name order. */
export const DIFF_MODELS = ["base", "chat"] as const;

/** One of a diff's two models. */
export type DiffModel = typeof DIFF_MODELS[number];

/** Shard `index` of `count`. */
export interface Shard {
  index: number;
  count: number;
}

const shardPart = (shard?: Shard) => shard ? `.shard-${shard.index}-of-${shard.count}` : "";

/** The statistics file of `model`, for the whole run or one shard. */
export function statsFileName(model: DiffModel, shard?: Shard): string {
  return `stats_${model}${shardPart(shard)}.safetensors`;
}

/** The resume checkpoint of `model`, for the whole run or one shard. */
export function checkpointFileName(model: DiffModel, shard?: Shard): string {
  return `checkpoint_${model}${shardPart(shard)}.safetensors`;
}

/** The model and shard a statistics file name stands for (the inverse of {@linkcode statsFileName}). */
export function parseStatsFileName(name: string): { model: DiffModel; shard?: Shard } | undefined {
  const match = /^stats_(base|chat)(?:\.shard-(\d+)-of-(\d+))?\.safetensors$/.exec(name);
  if (!match) return undefined;
  const model = match[1] as DiffModel;
  return match[2] === undefined ? { model } : { model, shard: { index: Number(match[2]), count: Number(match[3]) } };
}

/** What a statistics file says about the run that wrote it (JSON metadata, in this key order). */
export interface StatsMetadata {
  source: string;
  /** The model as the user named it (directory or hub id). */
  model: string;
  model_ver: DiffModel;
  sae_layer: number;
  sae: string;
  sae_format: string;
  dtype: GraphDtype;
  max_length: number;
  batch_size: number;
  prompts_digest: string;
  model_identity: string;
  sae_identity: string;
  neuronpedia_id: string | null;
  run_fingerprint: string;
  num_prompts: number;
  num_features: number;
  token_types: TokenType[];
  header_fallbacks: number;
  truncated: number;
  /** `i/n` for a shard's file, null for the whole run. */
  shard: string | null;
  /** The run's prompts `[start, end)` this file covers. */
  prompt_range: [number, number];
  /** How many shards a merged file came from. */
  merged_shards?: number;
  /** Top examples kept per feature and token type (0: none). */
  top_examples?: number;
}

const KINDS: Record<keyof StatsMetadata, "string" | "number" | "string|null" | "types" | "range" | "dtype"> = {
  source: "string",
  model: "string",
  model_ver: "string",
  sae_layer: "number",
  sae: "string",
  sae_format: "string",
  dtype: "dtype",
  max_length: "number",
  batch_size: "number",
  prompts_digest: "string",
  model_identity: "string",
  sae_identity: "string",
  neuronpedia_id: "string|null",
  run_fingerprint: "string",
  num_prompts: "number",
  num_features: "number",
  token_types: "types",
  header_fallbacks: "number",
  truncated: "number",
  shard: "string|null",
  prompt_range: "range",
  merged_shards: "number",
  top_examples: "number",
};

const OPTIONAL = new Set<keyof StatsMetadata>(["merged_shards", "top_examples"]);

/** `raw` checked field by field against {@linkcode StatsMetadata}; a file another version wrote is one line. */
export function parseStatsMetadata(raw: Record<string, unknown>, path: string): StatsMetadata {
  for (const [key, kind] of Object.entries(KINDS) as [keyof StatsMetadata, string][]) {
    const value = raw[key];
    if (value === undefined && OPTIONAL.has(key)) continue;
    const ok = kind === "string"
      ? typeof value === "string"
      : kind === "number"
      ? typeof value === "number" && Number.isFinite(value)
      : kind === "string|null"
      ? value === null || typeof value === "string"
      : kind === "types"
      ? Array.isArray(value) && value.every((t) => (TOKEN_TYPES as readonly unknown[]).includes(t))
      : kind === "range"
      ? Array.isArray(value) && value.length === 2 && value.every((n) => Number.isInteger(n))
      : value === "fp32" || value === "fp16";
    if (!ok) {
      throw new UserError(
        `${path} has no valid "${key}" in its metadata: it was not written by this version of the toolkit (collect again)`,
      );
    }
  }
  return raw as unknown as StatsMetadata;
}

/**
 * A statistics file's bytes: statistics (F64 tensors), top examples if any (F32 values, U32 prompts;
 * their k in the metadata's `top_examples`, 0 without) and the metadata as JSON.
 */
export function encodeStats(
  stats: FeatureStats,
  metadata: Record<string, unknown>,
  examples?: TopExamples,
): Uint8Array {
  return encodeSafetensors({ ...stats.toTensors(), ...examples?.toTensors() }, {
    format: "model-diff/stats/1",
    metadata: JSON.stringify({ ...metadata, top_examples: examples?.k ?? 0 }),
  });
}

/** The statistics (and top examples) in `path` of `source`, with their metadata. */
export async function readStatsFrom(
  source: FileSource,
  path: string,
): Promise<Collected & { metadata: Record<string, unknown> }> {
  const file = await SafetensorsFile.read(source, path);
  const label = source.label(path);
  if (file.metadata.format !== "model-diff/stats/1") {
    throw new UserError(`${label} is not a statistics file of this toolkit`);
  }
  const metadata = JSON.parse(file.metadata.metadata) as Record<string, unknown>;
  const types = metadata.token_types as string[];
  const dSae = Number(metadata.num_features);
  const k = Number(metadata.top_examples ?? 0);
  const tensors = new Map<string, Uint8Array>();
  for (const name of Object.keys(file.tensors)) tensors.set(name, await file.bytes(name));
  const f64 = (name: string) => {
    const stored = tensors.get(name)!;
    const bytes = stored.byteOffset % 8 === 0 ? stored : stored.slice();
    return new Float64Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 8);
  };
  const bytes = (name: string) => {
    const found = tensors.get(name);
    if (!found) throw new UserError(`${label} lacks its tensor ${name}`);
    return found;
  };
  return {
    stats: FeatureStats.fromTensors(types, dSae, f64),
    examples: k > 0 ? TopExamples.fromTensors(types, dSae, k, bytes) : undefined,
    metadata,
  };
}

/** The statistics in `path` of `source`, their metadata checked and typed. */
export async function readRunStatsFrom(
  source: FileSource,
  path: string,
): Promise<Collected & { metadata: StatsMetadata }> {
  const file = await readStatsFrom(source, path);
  return { ...file, metadata: parseStatsMetadata(file.metadata, source.label(path)) };
}
