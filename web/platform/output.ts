/// <reference lib="dom" />
/**
 * A {@linkcode ReportOutput} that keeps the files a run writes in memory, for the page to offer as
 * downloads (Blob URLs) and to show; plotly.js comes from the site (lib/run/web_layout.ts PLOTLY_FILE).
 *
 * @module
 */

import type { ReportOutput } from "../../lib/core/output.ts";
import { PLOTLY_FILE } from "../../lib/run/web_layout.ts";
import type { RunFile } from "../engine_api.ts";

/** MIME type of a report file by extension. */
export function fileType(name: string): string {
  const extension = name.slice(name.lastIndexOf(".") + 1).toLowerCase();
  return ({
    html: "text/html",
    csv: "text/csv",
    json: "application/json",
    jsonl: "application/jsonl",
    txt: "text/plain",
  } as Record<string, string>)[extension] ?? "application/octet-stream";
}

let plotly: Promise<string> | undefined;

/** plotly.js as served beside the page (fetched once). */
export function plotlyJsFromSite(): Promise<string> {
  plotly ??= fetch(new URL(PLOTLY_FILE, document.baseURI)).then((response) => {
    if (!response.ok) throw new Error(`${PLOTLY_FILE} is missing from the site (HTTP ${response.status})`);
    return response.text();
  });
  plotly.catch(() => plotly = undefined);
  return plotly;
}

/** A report output held in memory. */
export interface MemoryOutput extends ReportOutput {
  /** The files written so far, in the order first written. */
  files(): RunFile[];
}

/** An empty in-memory report output. */
export function memoryOutput(): MemoryOutput {
  const files = new Map<string, RunFile>();
  return {
    label: (name) => name,
    write(name, data) {
      const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data.slice();
      files.set(name, { name, bytes, type: fileType(name) });
      return Promise.resolve();
    },
    plotlyJs: plotlyJsFromSite,
    files: () => [...files.values()],
  };
}
