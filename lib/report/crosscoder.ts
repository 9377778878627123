/**
 * The outputs of `deno task crosscoder`: `crosscoder_latents.csv` (one row per latent: decoder norms,
 * relative norm, Δnorm, cosine, tag, and activation statistics per read position) and
 * `crosscoder.html` (the histogram of relative norms stacked by tag, and the tag counts).
 *
 * The activation columns are statistics of the encoder's raw output f (what the layout's `encode`
 * returns), not scaled by decoder norms.
 *
 * @module
 */

import { stringify } from "csv-stringify/sync";
import type { CrosscoderRun } from "../analysis/crosscoder/run.ts";
import { LATENT_TAGS, type LatentTag, TAG_THRESHOLD, tagCounts } from "../analysis/crosscoder/analysis.ts";
import { csvNumber } from "../features/diff.ts";
import type { ReportOutput } from "../core/output.ts";
import { METRICS } from "../features/stats.ts";
import { htmlTable, modelsLine, type PlotlyFigure, writePlotlyPage } from "./plotly.ts";

/** Bins of the relative-norm histogram over [0, 1]. */
export const RELATIVE_NORM_BINS = 50;

/** The tags' colours: chat-only and base-only at the ends, shared in the middle. */
const TAG_COLOURS: Record<LatentTag, string> = {
  chat_only: "#D1495B",
  base_only: "#2E86AB",
  shared: "#6A994E",
  other: "#9E9E9E",
};

/** The CSV's header: decoder statistics, then `{metric}_{token type}` of the raw activations f. */
export function crosscoderCsvHeader(tokenTypes: readonly string[]): string[] {
  return [
    "latent",
    "norm_base",
    "norm_chat",
    "relative_norm",
    "norm_diff",
    "cosine",
    "tag",
    ...tokenTypes.flatMap((type) => METRICS.map((metric) => `${metric}_${type}`)),
  ];
}

/** `crosscoder_latents.csv`: one row per latent, in latent order. */
export function crosscoderCsv(run: CrosscoderRun): string {
  const { decoder, activations, tokenTypes } = run;
  const rows = decoder.tags.map((tag, j) => [
    j,
    csvNumber(decoder.normBase[j]),
    csvNumber(decoder.normChat[j]),
    csvNumber(decoder.relativeNorm[j]),
    csvNumber(decoder.normDiff[j]),
    csvNumber(decoder.cosine[j]),
    tag,
    ...tokenTypes.flatMap((type) => METRICS.map((metric) => csvNumber(activations[type][metric][j]))),
  ]);
  return stringify([crosscoderCsvHeader(tokenTypes), ...rows]);
}

/** Counts per bin of [0, 1] of the relative norms of each tag's latents (NaN ones left out). */
export function relativeNormHistogram(
  relativeNorm: ArrayLike<number>,
  tags: readonly LatentTag[],
  bins = RELATIVE_NORM_BINS,
): Record<LatentTag, number[]> {
  const counts = Object.fromEntries(LATENT_TAGS.map((t) => [t, new Array<number>(bins).fill(0)])) as Record<
    LatentTag,
    number[]
  >;
  for (let j = 0; j < tags.length; j++) {
    const r = relativeNorm[j];
    if (Number.isNaN(r)) continue;
    counts[tags[j]][Math.min(bins - 1, Math.floor(r * bins))]++;
  }
  return counts;
}

/** `crosscoder.html`'s figure: the relative-norm histogram, one stacked bar trace per tag. */
export function relativeNormFigure(run: CrosscoderRun, title: string): PlotlyFigure {
  const { relativeNorm, tags } = run.decoder;
  const counts = relativeNormHistogram(relativeNorm, tags);
  const width = 1 / RELATIVE_NORM_BINS;
  const centres = Array.from({ length: RELATIVE_NORM_BINS }, (_, i) => (i + 0.5) * width);
  const dead = Array.from(relativeNorm).filter(Number.isNaN).length;
  return {
    data: LATENT_TAGS.map((tag) => ({
      type: "bar",
      name: tag,
      x: centres,
      y: counts[tag],
      width,
      marker: { color: TAG_COLOURS[tag] },
      hovertemplate: `${tag}: %{y} latents at relative norm %{x:.2f}<extra></extra>`,
    })),
    layout: {
      title: {
        text: `${title}<br><sub>relative decoder norm ‖d_chat‖ / (‖d_base‖ + ‖d_chat‖) of ${tags.length} latents` +
          `${dead ? ` (${dead} with zero decoders left out)` : ""}, stacked by tag</sub>`,
        x: 0.5,
      },
      barmode: "stack",
      bargap: 0,
      margin: { t: 110 },
      xaxis: { title: { text: "relative norm (0 = base only, 1 = chat only)" }, range: [0, 1] },
      yaxis: { title: { text: "latents" } },
    },
  };
}

/** Writes the crosscoder outputs into `outDir`, atomically; returns the file names. */
export async function writeCrosscoderOutputs(
  out: ReportOutput,
  run: CrosscoderRun,
  options: { title: string; models?: Record<string, string> },
): Promise<{ files: string[] }> {
  await out.write("crosscoder_latents.csv", crosscoderCsv(run));
  const counts = tagCounts(run.decoder.tags);
  const total = run.decoder.tags.length;
  const t = TAG_THRESHOLD;
  const rules: Record<LatentTag, string> = {
    chat_only: `Δnorm > ${1 - t}`,
    base_only: `Δnorm < ${t}`,
    shared: `|Δnorm − 0.5| < ${t}`,
    other: "otherwise",
  };
  const { config } = run.crosscoder;
  await writePlotlyPage(
    out,
    "crosscoder.html",
    "Crosscoder relative decoder norms",
    relativeNormFigure(run, options.title),
    {
      height: "520px",
      html: (options.models ? modelsLine(options.models) : "") + htmlTable(
        `Tags (Minder et al. 2025; Δnorm = ½((‖d_chat‖ − ‖d_base‖) / max + 1)) of ${config.source}: ` +
          `${config.layout}, ${config.architecture}, ${config.dict} latents, layer ${run.layer}, ${run.prompts} prompts`,
        ["tag", "rule", "latents", "fraction"],
        LATENT_TAGS.map((tag) => [tag, rules[tag], counts[tag], (counts[tag] / total).toFixed(4)]),
      ),
    },
  );
  return { files: ["crosscoder_latents.csv", "crosscoder.html"] };
}
