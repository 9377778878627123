/**
 * The sweep's outputs: `layer_similarity.csv` (the notebook's summary table), `cosine_similarity.html`,
 * and `contrast_vectors.safetensors` (per layer `contrast.{L}`, `normal_mean.{L}`, `swapped_mean.{L}`,
 * with JSON metadata) for `deno task steer`.
 *
 * @module
 */

import { stringify } from "csv-stringify/sync";
import type { ReportOutput } from "../core/output.ts";
import { encodeSafetensors, type TensorToWrite } from "../io/safetensors.ts";
import type { SweepResult } from "../analysis/sweep.ts";
import { contrastTensorName } from "../io/vector_names.ts";
import { cosineSweepFigure } from "./figures.ts";
import { modelDisplayName, modelsLine, writePlotlyPage } from "./plotly.ts";

/** What the sweep ran on, for the metadata. */
export interface SweepRunInfo {
  model: string;
  short: string;
  position: string;
  prompts: readonly string[];
  normalTexts: string[];
  swappedTexts: string[];
}

/** The printed summary: the table, then the top layers by difference. */
export function sweepSummary(sweep: SweepResult): string {
  const f = (x: number) => x.toFixed(4).padStart(10);
  const lines = [
    " layer  avg_within   avg_cross  difference  normal_nn  swapped_ss",
    ...sweep.rows.map((r) =>
      `${String(r.layer).padStart(6)}${f(r.avgWithin)}${f(r.avgCross)}${f(r.difference)}${f(r.avgNormalNormal)}${
        f(r.avgSwappedSwapped)
      }`
    ),
    "",
    "layers with the largest difference (within - cross):",
    ...[...sweep.rows].sort((a, b) => b.difference - a.difference).slice(0, 3).map((r) =>
      `  layer ${r.layer}: ${r.difference.toFixed(4)}`
    ),
  ];
  return lines.join("\n");
}

/** Writes the sweep's files into `outDir`; returns the printed summary and the file names. */
export async function writeSweepOutputs(
  out: ReportOutput,
  sweep: SweepResult,
  info: SweepRunInfo,
): Promise<{ summary: string; files: string[] }> {
  const csv = stringify([
    // The notebook's df_summary columns, in its order.
    [
      "layer",
      "avg_within_category",
      "avg_cross_category",
      "similarity_difference",
      "avg_normal_normal",
      "avg_swapped_swapped",
    ],
    ...sweep.rows.map((r) => [r.layer, r.avgWithin, r.avgCross, r.difference, r.avgNormalNormal, r.avgSwappedSwapped]),
  ]);
  await out.write("layer_similarity.csv", csv);
  await writePlotlyPage(
    out,
    "cosine_similarity.html",
    `${info.short} role-swap sweep`,
    cosineSweepFigure(
      sweep.rows,
      "Cosine Similarity of Activations Across Model Layers",
      `${modelDisplayName(info.model)} on Model Role vs User Role Questions`,
    ),
    { html: modelsLine({ model: info.model }) },
  );
  const tensors: Record<string, TensorToWrite> = {};
  for (const row of sweep.rows) {
    const d = sweep.contrast.get(row.layer)!.length;
    tensors[contrastTensorName(row.layer)] = { dtype: "F32", shape: [d], data: sweep.contrast.get(row.layer)! };
    tensors[`normal_mean.${row.layer}`] = { dtype: "F32", shape: [d], data: sweep.normalMean.get(row.layer)! };
    tensors[`swapped_mean.${row.layer}`] = { dtype: "F32", shape: [d], data: sweep.swappedMean.get(row.layer)! };
  }
  const metadata = {
    model: info.model,
    read_position: info.position,
    definition: "contrast = mean(normal) - mean(swapped) of resid_post (output of decoder layer L)",
    prompts: info.prompts,
    normal_texts: info.normalTexts,
    swapped_texts: info.swappedTexts,
    layers: sweep.rows,
  };
  await out.write(
    "contrast_vectors.safetensors",
    encodeSafetensors(tensors, {
      format: "model-diff/contrast/1",
      metadata: JSON.stringify(metadata),
    }),
  );
  return {
    summary: sweepSummary(sweep),
    files: ["layer_similarity.csv", "cosine_similarity.html", "contrast_vectors.safetensors"],
  };
}
