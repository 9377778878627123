/**
 * A diff run's statistics files in a directory on disk (their names, contents and metadata are
 * lib/analysis/stats_file.ts's).
 *
 * @module
 */

import { join } from "node:path";
import {
  type Collected,
  encodeStats,
  readRunStatsFrom,
  readStatsFrom,
  type Shard,
  statsFileName,
  type StatsMetadata,
} from "../analysis/stats_file.ts";
import type { CheckpointStore } from "../analysis/collect.ts";
import type { FeatureStats } from "../features/stats.ts";
import type { TopExamples } from "../features/top_examples.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import { dirSource } from "../io/fs_source.ts";
import type { DiffModel } from "../analysis/stats_file.ts";

export * from "../analysis/stats_file.ts";

/** The statistics file of `model` in `dir`. */
export function statsPath(dir: string, model: DiffModel, shard?: Shard): string {
  return join(dir, statsFileName(model, shard));
}

/** Saves statistics, top examples and metadata as a statistics file at `path`, atomically. */
export function writeStats(
  path: string,
  stats: FeatureStats,
  metadata: Record<string, unknown>,
  examples?: TopExamples,
): Promise<void> {
  return writeFileAtomic(path, encodeStats(stats, metadata, examples));
}

/** Loads the statistics file at `path`, with its metadata. */
export function readStats(path: string): Promise<Collected & { metadata: Record<string, unknown> }> {
  return readStatsFrom(dirSource(""), path);
}

/** A diff run's statistics file, its metadata checked and typed. */
export function readRunStats(path: string): Promise<Collected & { metadata: StatsMetadata }> {
  return readRunStatsFrom(dirSource(""), path);
}

/** A collection's resume checkpoint kept in the file at `path` (written atomically). */
export function fileCheckpoint(path: string): CheckpointStore {
  return {
    label: path,
    load: () =>
      Deno.readFile(path).catch((error) => {
        if (error instanceof Deno.errors.NotFound) return undefined;
        throw error;
      }),
    save: (bytes) => writeFileAtomic(path, bytes),
    remove: () => Deno.remove(path).catch(() => {}),
  };
}
