/**
 * The outputs of `deno task adl`: `adl_top_tokens.csv` (per position the top promoted and suppressed
 * tokens of the lens), `adl_contrast_cosine.csv` (cosine with each layer's contrast vector),
 * `adl_vectors.safetensors` (the differences as steering vectors, `adl.{position}`) and `adl.html`.
 *
 * @module
 */

import { stringify } from "csv-stringify/sync";
import type { ContrastVectors } from "../analysis/adl.ts";
import type { ActivationDifferences } from "../analysis/activation_differences.ts";
import type { LensToken } from "../analysis/lens.ts";
import { csvNumber } from "../features/diff.ts";
import type { ReportOutput } from "../core/output.ts";
import { encodeSafetensors, type TensorToWrite } from "../io/safetensors.ts";
import { htmlTable, modelDisplayName, modelsLine, type PlotlyFigure, writePlotlyPage } from "./plotly.ts";

/** The steering-vector tensor of position `key` in `adl_vectors.safetensors`. */
export function adlTensorName(key: string): string {
  return `adl.${key}`;
}

/** What the ADL run produced, for writing. */
export interface AdlReport {
  differences: ActivationDifferences;
  top: { promoted: LensToken[]; suppressed: LensToken[] }[];
  contrast?: ContrastVectors;
  /** [keys, contrast layers] */
  cosines?: Float32Array;
  decode: (ids: number[]) => string;
  info: { base: string; chat: string; prompts: number };
}

/** `adl.html`'s figure: cosine with the contrast vector of each layer, one line per position. */
export function adlCosineFigure(report: AdlReport, title: string): PlotlyFigure {
  const { keys } = report.differences;
  const layers = report.contrast?.layers ?? [];
  return {
    data: keys.map((key, k) => ({
      type: "scatter",
      mode: "lines+markers",
      name: key,
      x: layers,
      y: layers.map((_, l) => report.cosines![k * layers.length + l]),
      hovertemplate: `${key}<br>layer %{x}: cosine %{y:.4f}<extra></extra>`,
    })),
    layout: {
      title: { text: `${title}<br><sub>cosine of mean(chat − base) with each layer's role-swap contrast vector</sub>` },
      xaxis: { title: { text: "contrast vector layer" } },
      yaxis: { title: { text: "cosine" }, range: [-1, 1] },
      margin: { t: 100 },
    },
  };
}

/** Writes the ADL outputs into `outDir`; returns the file names. */
export async function writeAdlOutputs(out: ReportOutput, report: AdlReport): Promise<string[]> {
  const { differences, top, decode } = report;
  const { keys, layer } = differences;
  const tokenRows = keys.flatMap((key, k) =>
    (["promoted", "suppressed"] as const).flatMap((direction) =>
      top[k][direction].map((t) => [key, direction, t.rank, t.tokenId, decode([t.tokenId]), csvNumber(t.logit)])
    )
  );
  const tokenHeader = ["position", "direction", "rank", "token_id", "token", "lens_logit"];
  await out.write("adl_top_tokens.csv", stringify([tokenHeader, ...tokenRows]));
  const files = ["adl_top_tokens.csv"];
  const contrast = report.contrast;
  if (contrast && report.cosines) {
    const rows = keys.flatMap((key, k) =>
      contrast.layers.map((l, j) => [key, l, csvNumber(report.cosines![k * contrast.layers.length + j])])
    );
    await out.write("adl_contrast_cosine.csv", stringify([["position", "layer", "cosine"], ...rows]));
    files.push("adl_contrast_cosine.csv");
  }
  const tensors: Record<string, TensorToWrite> = {};
  keys.forEach((key, k) => {
    const v = Float32Array.from(differences.mean[k]);
    tensors[adlTensorName(key)] = { dtype: "F32", shape: [v.length], data: v };
  });
  await out.write(
    "adl_vectors.safetensors",
    encodeSafetensors(tensors, {
      format: "model-diff/adl/1",
      metadata: JSON.stringify({
        definition: "adl.{position} = mean over prompts of (chat - base) resid_post (output of decoder layer L)",
        layer,
        base: report.info.base,
        chat: report.info.chat,
        prompts: report.info.prompts,
        counts: Object.fromEntries(keys.map((key, k) => [key, differences.counts[k]])),
      }),
    }),
  );
  files.push("adl_vectors.safetensors");
  const tables = keys.map((key, k) =>
    htmlTable(
      `${key} (${differences.counts[k]} prompts): top promoted and suppressed tokens`,
      ["rank", "promoted", "lens logit", "suppressed", "lens logit"],
      top[k].promoted.map((t, i) => {
        const s = top[k].suppressed[i];
        return [t.rank, decode([t.tokenId]), t.logit.toFixed(3), decode([s.tokenId]), s.logit.toFixed(3)];
      }),
    )
  ).join("\n");
  const title = `${modelDisplayName(report.info.base)} → ${modelDisplayName(report.info.chat)}, layer ${layer}`;
  await writePlotlyPage(out, "adl.html", "activation-difference lens", adlCosineFigure(report, title), {
    height: contrast ? "480px" : "0px",
    html: modelsLine({ base: report.info.base, chat: report.info.chat }) + tables,
  });
  files.push("adl.html");
  return files;
}
