/**
 * Feature diffing: which SAE features change most from the base to the chat model, per metric and
 * read position, and the tables researchers look at.
 *
 * @module
 */

import { stringify } from "csv-stringify/sync";
import { neuronpediaLink } from "./neuronpedia.ts";

/** The metrics the notebook diffs. */
export const DIFF_METRICS = ["all_mean", "active_mean", "sparsity"] as const;

/** One diffed metric. */
export type DiffMetric = typeof DIFF_METRICS[number];

/** Per read position, per metric, one value per feature. */
export type MetricTable = Record<string, Record<DiffMetric, ArrayLike<number>>>;

/** One row of a top-changes table. */
export interface DiffRow {
  rank: number;
  featureId: number;
  token: string;
  base: number;
  chat: number;
  diff: number;
  ratio: number;
  link: string;
}

/**
 * chat / base, with a rule for zeros: a feature that was silent in the base model and active in the
 * chat model has ratio +Infinity (−Infinity if it went negative); silent in both: 1 (no change).
 */
export function changeRatio(base: number, chat: number): number {
  if (base !== 0) return chat / base;
  return chat === 0 ? 1 : chat > 0 ? Infinity : -Infinity;
}

/**
 * The `k` largest increases (or decreases) chat − base of `metric` for each token type, ranked within
 * the token type (ties: lower feature id first), all rows ordered by change, largest first.
 */
export function topChanges(
  base: MetricTable,
  chat: MetricTable,
  metric: DiffMetric,
  tokenTypes: readonly string[],
  k: number,
  options: { decreases?: boolean; neuronpediaId?: string } = {},
): DiffRow[] {
  const sign = options.decreases ? -1 : 1;
  const rows: DiffRow[] = [];
  for (const token of tokenTypes) {
    const b = base[token][metric];
    const c = chat[token][metric];
    const order = Array.from({ length: b.length }, (_, i) => i)
      .sort((i, j) => sign * ((c[j] - b[j]) - (c[i] - b[i])) || i - j)
      .slice(0, k);
    order.forEach((feature, index) => {
      rows.push({
        rank: index + 1,
        featureId: feature,
        token,
        base: b[feature],
        chat: c[feature],
        diff: c[feature] - b[feature],
        ratio: changeRatio(b[feature], c[feature]),
        link: neuronpediaLink(options.neuronpediaId, feature),
      });
    });
  }
  return rows.sort((x, y) =>
    sign * (y.diff - x.diff) || tokenTypes.indexOf(x.token) - tokenTypes.indexOf(y.token) || x.rank - y.rank
  );
}

/** Formats a number for CSV: shortest round-trip decimal, `inf`/`-inf`/`nan` as pandas writes them. */
export function csvNumber(x: number): string {
  if (Number.isNaN(x)) return "nan";
  if (!Number.isFinite(x)) return x > 0 ? "inf" : "-inf";
  return String(x);
}

/** The CSV text of a table, columns as the notebook names them (`{metric}_base`, ...). */
export function diffCsv(rows: DiffRow[], metric: DiffMetric): string {
  const header = [
    "rank",
    "feature_id",
    "token",
    `${metric}_base`,
    `${metric}_chat`,
    `${metric}_diff`,
    `${metric}_ratio`,
    "link",
  ];
  const records = rows.map((r) => [
    r.rank,
    r.featureId,
    r.token,
    csvNumber(r.base),
    csvNumber(r.chat),
    csvNumber(r.diff),
    csvNumber(r.ratio),
    r.link,
  ]);
  return stringify([header, ...records]);
}
