/**
 * A diff's report from its two statistics files, wherever they are: the tables (`top_{metric}.csv`,
 * `top_decreases_*` when asked) and the interactive figure `feature_increases.html`, written to a
 * {@linkcode ReportOutput} (the CLI's directory, a page's downloads).
 *
 * @module
 */

import { UserError } from "../core/errors.ts";
import type { ReportOutput } from "../core/output.ts";
import type { Collected, DiffModel, StatsMetadata } from "../analysis/stats_file.ts";
import {
  DIFF_METRICS,
  diffCsv,
  type DiffMetric,
  type DiffRow,
  type MetricTable,
  topChanges,
} from "../features/diff.ts";
import type { FeatureStats } from "../features/stats.ts";
import { featureIncreasesFigure } from "./figures.ts";
import { modelDisplayName, modelsLine, writePlotlyPage } from "./plotly.ts";

/** One model's statistics file, read. */
export type RunStats = Collected & { metadata: StatsMetadata };

/** The tables of a diff and the files they went into. */
export interface DiffTables {
  tables: Record<DiffMetric, DiffRow[]>;
  files: string[];
  title: string;
}

/**
 * Diffs `base` against `chat` (named `labels` in messages; they must come from one run) and writes
 * the top-k tables per metric into `out`.
 */
export async function writeDiffTables(
  stats: Record<DiffModel, RunStats>,
  out: ReportOutput,
  options: { topK: number; decreases: boolean; labels: Record<DiffModel, string> },
): Promise<DiffTables> {
  const { base, chat } = stats;
  if (base.metadata.run_fingerprint !== chat.metadata.run_fingerprint) {
    throw new UserError(
      `${options.labels.base} and ${options.labels.chat} come from different runs: collect both in one run (or --merge one run's shards)`,
    );
  }
  const tokenTypes = chat.metadata.token_types;
  const table = (s: FeatureStats): MetricTable => {
    const metrics = s.finalize();
    return Object.fromEntries(tokenTypes.map((t) => [t, metrics[t]])) as MetricTable;
  };
  const [b, c] = [table(base.stats), table(chat.stats)];
  const id = chat.metadata.neuronpedia_id ?? undefined;
  const tables = {} as Record<DiffMetric, DiffRow[]>;
  const files: string[] = [];
  for (const metric of DIFF_METRICS) {
    tables[metric] = topChanges(b, c, metric, tokenTypes, options.topK, { neuronpediaId: id });
    await out.write(`top_${metric}.csv`, diffCsv(tables[metric], metric));
    files.push(`top_${metric}.csv`);
    if (options.decreases) {
      const down = topChanges(b, c, metric, tokenTypes, options.topK, { neuronpediaId: id, decreases: true });
      await out.write(`top_decreases_${metric}.csv`, diffCsv(down, metric));
      files.push(`top_decreases_${metric}.csv`);
    }
  }
  const title = `${modelDisplayName(base.metadata.model)} → ${
    modelDisplayName(chat.metadata.model)
  } (layer ${chat.metadata.sae_layer})`;
  return { tables, files, title };
}

/** Writes `feature_increases.html`: the figure of the tables, the models' line and `extraHtml` beneath it. */
export async function writeFeatureIncreasesPage(
  stats: Record<DiffModel, RunStats>,
  diff: DiffTables,
  out: ReportOutput,
  extraHtml = "",
): Promise<void> {
  await writePlotlyPage(
    out,
    "feature_increases.html",
    "feature increases",
    featureIncreasesFigure(diff.tables, stats.chat.metadata.token_types, diff.title),
    // The figure's own height, so the models' line and the link show beneath it.
    {
      html: modelsLine({ base: stats.base.metadata.model, chat: stats.chat.metadata.model }) + extraHtml,
      height: "540px",
    },
  );
}

/** The line under the figure that links the feature dashboards (`cards` features from the first `rows` rows per table). */
export function dashboardsLink(cards: number, rows: number): string {
  return `<p style="margin:8px"><a href="features.html">Feature dashboards</a>: top examples of the ${cards} features in the first ${rows} rows per read position of each table.</p>`;
}
