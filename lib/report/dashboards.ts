/**
 * `features.html`: one card per feature of the diff's top tables, with both models' top examples
 * (the prompt around its read position, each token coloured by the feature's activation there), the
 * feature's statistics in both models, its Neuronpedia link and explanation. Self-contained: the data
 * is embedded as JSON and drawn by a short script, so the page opens offline.
 *
 * @module
 */

import type { ReportOutput } from "../core/output.ts";
import { escapeHtml, scriptSafe } from "./plotly.ts";

/** One top example on a card. */
export interface CardExample {
  /** The run's index of the prompt. */
  prompt: number;
  /** The activation at the read position, as collected. */
  value: number;
  /** Token index of the read position. */
  position: number;
  /** The feature's activation at every token of the prompt, when it was computed. */
  activations?: number[];
}

/** One feature at one read position. */
export interface FeatureCard {
  feature: number;
  /** The read position (token type) of its table rows. */
  token: string;
  /** Its rank in each table it is in. */
  ranks: { metric: string; rank: number }[];
  /** Its Neuronpedia page, or "". */
  link: string;
  /** Neuronpedia's explanations; when there are none, `note` says why. */
  explanation: { texts: string[]; note?: string };
  /** Each metric in both models, at this read position. */
  stats: { metric: string; base: number; chat: number }[];
  examples: { base: CardExample[]; chat: CardExample[] };
}

/** Everything `features.html` shows. */
export interface DashboardData {
  title: string;
  /** Examples kept per feature and model. */
  k: number;
  /** Each shown prompt's tokens as text, by the run's prompt index. */
  tokens: Record<number, string[]>;
  cards: FeatureCard[];
  /** A line about the whole page (e.g. why explanations are missing). */
  note?: string;
}

/** Tokens shown before and after the read position until a prompt is opened whole. */
const BEFORE = 24;
const AFTER = 6;

/** The page's drawing code: plain DOM, text set as text (prompts are user data). */
const SCRIPT = `
const root = document.getElementById("cards");
const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
};
const fmt = (v) => !Number.isFinite(v) ? String(v)
  : v !== 0 && (Math.abs(v) >= 1e4 || Math.abs(v) < 1e-3) ? v.toExponential(3) : String(Number(v.toFixed(4)));
const shown = (t) => t.replace(/\\n/g, "\\u21b5");
const cardId = (c) => "feature-" + c.feature + "-" + c.token;

function tokensOf(example, tokens, scale, whole) {
  const line = el("span", "tokens");
  const from = whole ? 0 : Math.max(0, example.position - ${BEFORE});
  const to = whole ? tokens.length : Math.min(tokens.length, example.position + ${AFTER + 1});
  if (from > 0) line.append(el("span", "more", "\\u2026"));
  for (let i = from; i < to; i++) {
    const a = example.activations ? example.activations[i] : i === example.position ? example.value : 0;
    const token = el("span", i === example.position ? "tok read" : "tok", shown(tokens[i]));
    token.title = "token " + i + ": " + fmt(a);
    if (a > 0) token.style.background = "rgba(255, 127, 14, " + Math.min(1, a / scale).toFixed(3) + ")";
    line.append(token);
  }
  if (to < tokens.length) line.append(el("span", "more", "\\u2026"));
  return line;
}

function examplesOf(model, examples, scale) {
  const column = el("div", "model");
  column.append(el("h4", "", model + " model"));
  if (!examples.length) column.append(el("p", "none", "never active at this read position"));
  examples.forEach((example, i) => {
    const tokens = data.tokens[example.prompt];
    const row = el("div", "example");
    const head = el("div", "head", "#" + (i + 1) + "  " + fmt(example.value) + "  (prompt " + example.prompt + ")");
    const toggle = el("button", "", "whole prompt");
    head.append(toggle);
    let whole = false;
    let line = tokensOf(example, tokens, scale, whole);
    toggle.onclick = () => {
      whole = !whole;
      toggle.textContent = whole ? "around the read position" : "whole prompt";
      const next = tokensOf(example, tokens, scale, whole);
      line.replaceWith(next);
      line = next;
    };
    row.append(head, line);
    column.append(row);
  });
  return column;
}

const nav = document.getElementById("nav");
for (const card of data.cards) {
  const link = el("a", "", card.feature + " \\u00b7 " + card.token);
  link.href = "#" + cardId(card);
  nav.append(link, " ");
  const section = el("section", "card");
  section.id = cardId(card);
  const title = el("h3", "", "Feature " + card.feature + " \\u00b7 " + card.token);
  if (card.link) {
    const np = el("a", "np", "Neuronpedia \\u2197");
    np.href = card.link;
    np.target = "_blank";
    np.rel = "noopener";
    title.append(" ", np);
  }
  section.append(title);
  section.append(el("div", "ranks", card.ranks.map((r) => r.metric + " #" + r.rank).join(" \\u00b7 ")));
  const explanation = el("div", "explanation");
  if (card.explanation.texts.length) {
    for (const text of card.explanation.texts) explanation.append(el("div", "", text));
  } else explanation.append(el("span", "none", card.explanation.note ?? "no explanation cached"));
  section.append(explanation);
  const table = el("table", "stats");
  const header = el("tr");
  for (const h of ["metric", "base", "chat", "chat \\u2212 base"]) header.append(el("th", "", h));
  table.append(header);
  for (const s of card.stats) {
    const tr = el("tr");
    for (const v of [s.metric, fmt(s.base), fmt(s.chat), fmt(s.chat - s.base)]) tr.append(el("td", "", v));
    table.append(tr);
  }
  section.append(table);
  const all = [...card.examples.base, ...card.examples.chat];
  const scale = Math.max(1e-30, ...all.map((e) => e.activations ? Math.max(e.value, ...e.activations) : e.value));
  const columns = el("div", "columns");
  columns.append(examplesOf("base", card.examples.base, scale), examplesOf("chat", card.examples.chat, scale));
  section.append(columns);
  root.append(section);
}
`;

const STYLE = `
body { margin: 0 12px 24px; font-family: sans-serif; font-size: 14px; }
#nav a { font-size: 12px; margin-right: 4px; }
.card { border: 1px solid #ccc; border-radius: 6px; margin: 12px 0; padding: 6px 12px; }
.card h3 { margin: 4px 0; }
.np { font-size: 13px; font-weight: normal; }
.ranks, .none { color: #666; font-size: 12px; }
.explanation { margin: 6px 0; font-style: italic; }
.stats { border-collapse: collapse; font-size: 12px; margin: 6px 0; }
.stats th, .stats td { border: 1px solid #ddd; padding: 1px 6px; text-align: right; }
.stats td:first-child, .stats th:first-child { text-align: left; }
.columns { display: flex; gap: 16px; }
.model { flex: 1; min-width: 0; }
.model h4 { margin: 6px 0 2px; }
.example { margin: 4px 0; }
.head { font-size: 12px; color: #444; }
.head button { font-size: 11px; margin-left: 8px; }
.tokens { font-family: monospace; font-size: 12px; white-space: pre-wrap; overflow-wrap: anywhere; }
.tok { border-radius: 2px; }
.tok.read { outline: 2px solid #1f77b4; }
.more { color: #999; }
`;

/** The HTML of `features.html` for `data`. */
export function dashboardPage(data: DashboardData): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${escapeHtml(data.title)} — feature dashboards</title>
<style>${STYLE}</style>
</head>
<body>
<h2>${escapeHtml(data.title)}</h2>
<p>Top ${data.k} examples per model at each card's read position (the outlined token); each token is coloured by the
feature's activation there (the card's largest activation is full colour). ${
    data.note ? escapeHtml(data.note) : ""
  } <a href="feature_increases.html">feature_increases.html</a></p>
<div id="nav"></div>
<div id="cards"></div>
<script>
const data = ${scriptSafe(JSON.stringify(data))};
${SCRIPT}
</script>
</body>
</html>
`;
}

/** Writes `features.html` for `data`, atomically. */
export async function writeDashboardPage(out: ReportOutput, name: string, data: DashboardData): Promise<void> {
  await out.write(name, dashboardPage(data));
}
