/**
 * The notebooks' figures as Plotly specs: base-vs-chat feature scatter plots and the layer sweep's
 * cosine-similarity lines.
 *
 * @module
 */

import { DIFF_METRICS, type DiffMetric, type DiffRow } from "../features/diff.ts";
import type { LayerSimilarity } from "../analysis/sweep.ts";
import type { PlotlyFigure } from "./plotly.ts";

const TOKEN_COLORS: Record<string, string> = { asst: "#FF6B6B", endheader: "#4ECDC4", newline: "#45B7D1" };
const TOKEN_SYMBOLS: Record<string, string> = { asst: "circle", endheader: "square", newline: "diamond" };
const METRIC_TITLES: Record<DiffMetric, string> = {
  all_mean: "Mean All",
  active_mean: "Mean Active",
  sparsity: "Sparsity",
};

function range(values: number[]): [number, number] {
  const finite = values.filter(Number.isFinite);
  const lo = Math.min(...finite, 0);
  const hi = Math.max(...finite, 0);
  const pad = (hi - lo) * 0.05 || 0.05;
  return [lo - pad, hi + pad];
}

/**
 * `feature_increases.html`: one subplot per metric, x = base, y = chat, one trace per token type, a
 * dashed y = x "no change" line, one shared range for the two mean plots, hover with feature id,
 * values and Neuronpedia link.
 */
export function featureIncreasesFigure(
  tables: Record<DiffMetric, DiffRow[]>,
  tokenTypes: readonly string[],
  title: string,
): PlotlyFigure {
  const data: Record<string, unknown>[] = [];
  const means = [...tables.all_mean, ...tables.active_mean].flatMap((r) => [r.base, r.chat]);
  const meanRange = range(means);
  const layout: Record<string, unknown> = {
    title: { text: `${title}<br><sub>Top features per read position</sub>`, x: 0.5 },
    height: 520,
    margin: { t: 120 },
    legend: { orientation: "v", x: 1.02, y: 1 },
    hovermode: "closest",
    annotations: [] as unknown[],
  };
  DIFF_METRICS.forEach((metric, i) => {
    const axis = i === 0 ? "" : String(i + 1);
    const rows = tables[metric];
    for (const token of tokenTypes) {
      const tokenRows = rows.filter((r) => r.token === token);
      data.push({
        type: "scatter",
        mode: "markers",
        name: token,
        legendgroup: token,
        showlegend: i === 0,
        x: tokenRows.map((r) => r.base),
        y: tokenRows.map((r) => r.chat),
        xaxis: `x${axis}`,
        yaxis: `y${axis}`,
        marker: {
          color: TOKEN_COLORS[token] ?? "#888",
          symbol: TOKEN_SYMBOLS[token] ?? "circle",
          size: 8,
          line: { width: 1, color: "white" },
        },
        customdata: tokenRows.map((r) => [r.featureId, r.rank, r.diff, r.link]),
        hovertemplate: "<b>Feature %{customdata[0]}</b><br>Token: " + token +
          "<br>Rank: %{customdata[1]}<br>Base: %{x:.6f}<br>Chat: %{y:.6f}<br>Difference: %{customdata[2]:.6f}" +
          "<br>%{customdata[3]}<extra></extra>",
      });
    }
    const lineRange = metric === "sparsity" ? range(rows.flatMap((r) => [r.base, r.chat])) : meanRange;
    data.push({
      type: "scatter",
      mode: "lines",
      name: "No change",
      legendgroup: "nochange",
      showlegend: i === 0,
      x: lineRange,
      y: lineRange,
      xaxis: `x${axis}`,
      yaxis: `y${axis}`,
      line: { color: "gray", dash: "dash", width: 2 },
      hovertemplate: "No change line<extra></extra>",
    });
    const domain = [i / 3 + (i ? 0.03 : 0), (i + 1) / 3 - (i < 2 ? 0.03 : 0)];
    layout[`xaxis${axis}`] = { domain, title: { text: "Base" }, ...(metric !== "sparsity" && { range: meanRange }) };
    layout[`yaxis${axis}`] = {
      anchor: `x${axis}`,
      title: { text: "Chat" },
      ...(metric !== "sparsity" && { range: meanRange }),
    };
    (layout.annotations as unknown[]).push({
      text: METRIC_TITLES[metric],
      x: (domain[0] + domain[1]) / 2,
      y: 1.04,
      xref: "paper",
      yref: "paper",
      showarrow: false,
      font: { size: 14 },
    });
  });
  return { data, layout };
}

/** `cosine_similarity.html`: within-group (each role) and across-group similarity by layer. */
export function cosineSweepFigure(rows: LayerSimilarity[], title: string, subtitle: string): PlotlyFigure {
  const layers = rows.map((r) => r.layer);
  const differences = rows.map((r) => r.difference);
  const line = (name: string, y: number[], dash?: string) => ({
    type: "scatter",
    mode: "lines+markers",
    name,
    x: layers,
    y,
    customdata: differences,
    line: { width: 2, ...(dash && { dash }) },
    marker: { size: 4 },
    hovertemplate:
      `<b>${name}</b><br>Layer: %{x}<br>Similarity: %{y:.4f}<br>Difference (Within-Cross): %{customdata:.4f}<extra></extra>`,
  });
  return {
    data: [
      line("Within Group: Model Role", rows.map((r) => r.avgNormalNormal), "dash"),
      line("Within Group: User Role", rows.map((r) => r.avgSwappedSwapped), "dash"),
      line("Across Groups: Model-User", rows.map((r) => r.avgCross)),
    ],
    layout: {
      title: { text: `${title}<br><sub>${subtitle}</sub>`, x: 0.5 },
      xaxis: {
        title: { text: "Layer" },
        showgrid: true,
        showline: true,
        linecolor: "black",
        range: [0, layers.length],
      },
      yaxis: { title: { text: "Cosine Similarity" }, showgrid: true, showline: true, linecolor: "black" },
      height: 600,
      hovermode: "closest",
      legend: { yanchor: "top", y: 0.98, xanchor: "right", x: 0.99 },
    },
  };
}
