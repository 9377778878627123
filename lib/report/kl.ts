/**
 * The outputs of `deno task kl`: `kl_tokens.csv` (every token), `kl_summary.csv` (mean and median per
 * token type and per position), `kl_top.csv` (the highest-KL tokens with their context) and `kl.html`
 * (those as bars, lines and a histogram, with the top tokens as a table).
 *
 * @module
 */

import { stringify } from "csv-stringify/sync";
import { csvNumber } from "../features/diff.ts";
import type { ReportOutput } from "../core/output.ts";
import { histogram, type KlGroup, klGroups, type TokenKl, topKlTokens } from "../analysis/kl.ts";
import type { PreparedPrompt } from "../runtime/chat.ts";
import { htmlTable, modelsLine, type PlotlyFigure, writePlotlyPage } from "./plotly.ts";

/** One top token with what a reader needs to see it in place. */
export interface KlTopRow {
  rank: number;
  token: TokenKl;
  /** The token's text, and the up to `context` tokens before it. */
  text: string;
  context: string;
  /** The token that really follows in the prompt ("" at the end). */
  next: string;
  chatTop: string;
  baseTop: string;
}

/** The top `n` tokens with their context of `context` tokens, decoded by `decode`. */
export function klTopRows(
  tokens: readonly TokenKl[],
  prompts: readonly PreparedPrompt[],
  decode: (ids: number[]) => string,
  n: number,
  context = 12,
): KlTopRow[] {
  return topKlTokens(tokens, n).map((token, i) => {
    const ids = prompts[token.prompt].ids;
    return {
      rank: i + 1,
      token,
      text: decode([token.tokenId]),
      // The first token has no context (and the tokenizer refuses to decode nothing).
      context: token.position > 0 ? decode(ids.slice(Math.max(0, token.position - context), token.position)) : "",
      next: token.position + 1 < ids.length ? decode([ids[token.position + 1]]) : "",
      chatTop: decode([token.chatTop]),
      baseTop: decode([token.baseTop]),
    };
  });
}

/** `kl.html`'s figure: per token type (bars), per position (lines), histogram of every token. */
export function klFigure(groups: readonly KlGroup[], tokens: readonly TokenKl[], title: string): PlotlyFigure {
  const types = groups.filter((g) => g.by === "token_type");
  const positions = groups.filter((g) => g.by === "position");
  const hist = histogram(tokens.map((t) => t.kl));
  const centres = hist.counts.map((_, i) => (hist.edges[i] + hist.edges[i + 1]) / 2);
  const domains = [[0, 0.27], [0.35, 0.62], [0.7, 1]];
  const axis = (i: number, x: string, y: string, extra: Record<string, unknown> = {}) => ({
    [`xaxis${i ? i + 1 : ""}`]: { domain: domains[i], title: { text: x }, ...extra },
    [`yaxis${i ? i + 1 : ""}`]: { anchor: `x${i ? i + 1 : ""}`, title: { text: y } },
  });
  return {
    data: [
      ...(["mean", "median"] as const).map((stat) => ({
        type: "bar",
        name: `${stat} per token type`,
        x: types.map((g) => g.key),
        y: types.map((g) => g[stat]),
        customdata: types.map((g) => g.count),
        hovertemplate: `%{x}: ${stat} %{y:.4g} nats over %{customdata} tokens<extra></extra>`,
      })),
      ...(["mean", "median"] as const).map((stat) => ({
        type: "scatter",
        mode: "lines+markers",
        name: `${stat} per position`,
        x: positions.map((g) => Number(g.key)),
        y: positions.map((g) => g[stat]),
        customdata: positions.map((g) => g.count),
        xaxis: "x2",
        yaxis: "y2",
        hovertemplate: `position %{x}: ${stat} %{y:.4g} nats over %{customdata} prompts<extra></extra>`,
      })),
      {
        type: "bar",
        name: "tokens",
        x: centres,
        y: hist.counts,
        width: hist.edges[1] - hist.edges[0],
        xaxis: "x3",
        yaxis: "y3",
        marker: { color: "#45B7D1" },
        hovertemplate: "KL %{x:.4g}: %{y} tokens<extra></extra>",
      },
    ],
    layout: {
      title: { text: `${title}<br><sub>KL(chat ‖ base) of the next-token distributions, nats</sub>`, x: 0.5 },
      barmode: "group",
      margin: { t: 110 },
      legend: { orientation: "h", y: -0.2 },
      ...axis(0, "token type", "KL (nats)"),
      ...axis(1, "position in prompt", "KL (nats)"),
      ...axis(2, "KL (nats)", "tokens"),
    },
  };
}

/** Writes the KL outputs into `outDir`; returns the file names and the groups (for printing). */
export async function writeKlOutputs(
  out: ReportOutput,
  run: { tokens: TokenKl[]; prompts: PreparedPrompt[]; decode: (ids: number[]) => string },
  options: { title: string; tokenTypes: readonly string[]; top: number; models?: Record<string, string> },
): Promise<{ files: string[]; groups: KlGroup[]; top: KlTopRow[] }> {
  const { tokens, prompts, decode } = run;
  const groups = klGroups(tokens, options.tokenTypes);
  const top = klTopRows(tokens, prompts, decode, options.top);
  await out.write(
    "kl_tokens.csv",
    stringify([
      ["prompt", "position", "token_id", "token", "token_types", "kl", "chat_top", "base_top"],
      ...tokens.map((t) => [
        t.prompt,
        t.position,
        t.tokenId,
        decode([t.tokenId]),
        t.types.join(";"),
        csvNumber(t.kl),
        decode([t.chatTop]),
        decode([t.baseTop]),
      ]),
    ]),
  );
  await out.write(
    "kl_summary.csv",
    stringify([
      ["by", "key", "count", "mean", "median"],
      ...groups.map((g) => [g.by, g.key, g.count, csvNumber(g.mean), csvNumber(g.median)]),
    ]),
  );
  const topHeader = [
    "rank",
    "prompt",
    "position",
    "token",
    "token_types",
    "kl",
    "context",
    "next",
    "chat_top",
    "base_top",
  ];
  const topCells = top.map((r) => [
    r.rank,
    r.token.prompt,
    r.token.position,
    r.text,
    r.token.types.join(";"),
    csvNumber(r.token.kl),
    r.context,
    r.next,
    r.chatTop,
    r.baseTop,
  ]);
  await out.write("kl_top.csv", stringify([topHeader, ...topCells]));
  await writePlotlyPage(out, "kl.html", "KL per token", klFigure(groups, tokens, options.title), {
    height: "520px",
    html: (options.models ? modelsLine(options.models) : "") +
      htmlTable(`The ${top.length} highest-KL tokens (context: up to 12 tokens before)`, topHeader, topCells),
  });
  return { files: ["kl_tokens.csv", "kl_summary.csv", "kl_top.csv", "kl.html"], groups, top };
}
