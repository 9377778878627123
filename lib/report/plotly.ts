/**
 * Self-contained interactive pages: Plotly figures with plotly.js inlined, so a page opens offline
 * and can be mailed around as one file (the platform supplies plotly.js: see ReportOutput).
 *
 * @module
 */

import type { ReportOutput } from "../core/output.ts";

/** A Plotly figure: traces and layout as plotly.js takes them. */
export interface PlotlyFigure {
  data: Record<string, unknown>[];
  layout: Record<string, unknown>;
}

/** Escapes JSON text for inclusion inside a `<script>` element. */
export function scriptSafe(json: string): string {
  return json.replace(/</g, "\\u003c").replace(/>/g, "\\u003e").replace(/&/g, "\\u0026");
}

/** Escapes text for HTML element content and attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** Options of {@linkcode plotlyPage}: HTML below the figure (tables), and the figure's CSS height. */
export interface PageOptions {
  html?: string;
  height?: string;
}

/** The HTML of a page showing `figure`, with `plotlyJs` (plotly.js's source) inlined. */
export function plotlyPage(title: string, figure: PlotlyFigure, plotlyJs: string, options: PageOptions = {}): string {
  const figureJson = scriptSafe(JSON.stringify(figure));
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${escapeHtml(title)}</title>
<script>${plotlyJs}</script>
</head>
<body style="margin:0;font-family:sans-serif">
<div id="figure" style="width:100%;height:${options.height ?? "100vh"}"></div>${options.html ?? ""}
<script>
const figure = ${figureJson};
Plotly.newPlot("figure", figure.data, figure.layout, { responsive: true });
</script>
</body>
</html>
`;
}

/** Writes `figure` as the self-contained HTML page `name` of `out`. */
export async function writePlotlyPage(
  out: ReportOutput,
  name: string,
  title: string,
  figure: PlotlyFigure,
  options: PageOptions = {},
): Promise<void> {
  await out.write(name, plotlyPage(title, figure, await out.plotlyJs(), options));
}

/**
 * How pages name a model: a hub id as it is, a hub cache snapshot by its repository, a directory by its
 * last component (the machine's path is no part of what the page shows, and stays in
 * {@linkcode modelsLine}'s tooltip).
 */
export function modelDisplayName(source: string): string {
  const trimmed = source.replace(/[\\/]+$/, "");
  // A Hugging Face hub cache snapshot (`models--org--name/snapshots/<commit>`) is the repository it holds.
  const snapshot = /models--([^\\/]+?)--([^\\/]+)[\\/]snapshots[\\/][^\\/]+$/.exec(trimmed);
  if (snapshot) return `${snapshot[1]}/${snapshot[2]}`;
  if (/^[A-Za-z0-9][\w.-]*\/[\w.-]+$/.test(trimmed) && !trimmed.startsWith(".")) return trimmed;
  return trimmed.split(/[\\/]/).at(-1) || trimmed;
}

/** A line naming the compared models by {@linkcode modelDisplayName}, each with its full source as a tooltip. */
export function modelsLine(models: Record<string, string>): string {
  const named = Object.entries(models).map(([role, source]) =>
    `${escapeHtml(role)} <span title="${escapeHtml(source)}" style="border-bottom:1px dotted #999">${
      escapeHtml(modelDisplayName(source))
    }</span>`
  );
  return `<p style="margin:8px;color:#555;font-size:13px">${named.join(" · ")}</p>`;
}

/** An HTML table (cells escaped) with a heading, in the pages' plain style, for below a figure. */
export function htmlTable(heading: string, header: string[], rows: (string | number)[][]): string {
  const cell = (tag: string, value: string | number) =>
    `<${tag} style="border:1px solid #ccc;padding:2px 6px;text-align:left;white-space:pre-wrap">${
      escapeHtml(String(value))
    }</${tag}>`;
  return `
<h3 style="margin:16px 8px 4px">${escapeHtml(heading)}</h3>
<table style="border-collapse:collapse;margin:0 8px 16px;font-size:13px">
<thead><tr>${header.map((h) => cell("th", h)).join("")}</tr></thead>
<tbody>
${rows.map((row) => `<tr>${row.map((v) => cell("td", v)).join("")}</tr>`).join("\n")}
</tbody>
</table>`;
}
