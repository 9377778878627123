/**
 * What a diff report says on the terminal: the top increases per metric, and where the files are.
 *
 * @module
 */

import { join } from "node:path";
import { DIFF_METRICS } from "../features/diff.ts";
import type { DiffReport } from "./diff_run.ts";

/** The five largest increases per metric, one line each with the feature's link. */
export function diffSummary(report: DiffReport): string[] {
  const lines = [`\ntop increases chat - base (${report.prompts} prompts, ${report.features} features):`];
  for (const metric of DIFF_METRICS) {
    lines.push(`  ${metric}:`);
    for (const row of report.tables[metric].slice(0, 5)) {
      lines.push(
        `    ${row.token.padEnd(9)} feature ${String(row.featureId).padStart(6)}  base ${row.base.toFixed(4)}  chat ${
          row.chat.toFixed(4)
        }  diff ${row.diff.toFixed(4)}${row.link ? `  ${row.link}` : ""}`,
      );
    }
  }
  return lines;
}

/** Where the report's files are, and which to open. */
export function reportLinks(report: DiffReport, outDir: string): string[] {
  const lines = [`\nresults in ${outDir}: ${report.files.join(", ")}`];
  if (report.files.includes("feature_increases.html")) {
    lines.push(`report: ${join(outDir, "feature_increases.html")} (open it in a browser)`);
  }
  if (report.files.includes("features.html")) lines.push(`feature dashboards: ${join(outDir, "features.html")}`);
  return lines;
}
