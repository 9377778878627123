/**
 * Bench rows, how they are timed and how they are printed: each figure beside its ratio to a named
 * baseline peer of the same measure, measured in the same run. One median, one interleaving and one
 * table renderer (aligned text for the terminal, markdown for `--report`).
 *
 * @module
 */

/** One measured peer: what was measured, by whom, the figure and its unit. */
export interface BenchRow {
  measure: string;
  peer: string;
  value: number;
  unit: string;
  note?: string;
}

/**
 * Rows measured in one run under the same rules, each compared with the row of its measure whose
 * peer is `versus`, and the peers that could not run here (one line each, saying why).
 */
export interface BenchSection {
  title: string;
  versus: string;
  rows: BenchRow[];
  skipped?: string[];
  /** The rules every peer ran under, where the peers' names do not say. */
  rules?: string;
}

/** A timed run. */
export type Run = () => Promise<unknown>;

/** Medians of `reps` rounds in which every run is timed once, in turn. */
async function timedRounds(reps: number, runs: Run[]): Promise<number[]> {
  const times = runs.map(() => [] as number[]);
  for (let i = 0; i < Math.max(1, reps); i++) {
    for (const [k, run] of runs.entries()) {
      const start = performance.now();
      await run();
      times[k].push((performance.now() - start) / 1000);
    }
  }
  return times.map((t) => t.sort((a, b) => a - b)[Math.floor(t.length / 2)]);
}

/**
 * The median seconds of each of `runs`, timed in turn `reps` times after one untimed round
 * (compilation, first uploads), so that load from other processes falls on every peer alike.
 */
export async function interleavedMedians(reps: number, runs: Run[]): Promise<number[]> {
  for (const run of runs) await run();
  return await timedRounds(reps, runs);
}

/** The median of `reps` timed runs of `run` in seconds, after one untimed warm-up run. */
export async function medianSeconds(reps: number, run: Run): Promise<number> {
  return (await interleavedMedians(reps, [run]))[0];
}

/**
 * {@linkcode interleavedMedians} of named runs where a peer may be unable to run here (an f16
 * MatMul a runtime lacks, a binding too large): a run whose warm-up throws is left out of the timing
 * and reported in `failed` by its first line instead of ending the benchmark.
 */
export async function settledMedians(
  reps: number,
  runs: Record<string, Run>,
): Promise<{ seconds: Record<string, number>; failed: Record<string, string> }> {
  const failed: Record<string, string> = {};
  const names: string[] = [];
  for (const [name, run] of Object.entries(runs)) {
    await run().then(() => names.push(name), (error) => {
      failed[name] = String(error?.message ?? error).split("\n")[0].slice(0, 80);
    });
  }
  const medians = await timedRounds(reps, names.map((name) => runs[name]));
  return { seconds: Object.fromEntries(names.map((name, i) => [name, medians[i]])), failed };
}

/**
 * How many times faster `row` is than `base`, for rows of one unit: a rate's (a unit ending in "/s")
 * ratio, a cost's (seconds, ms, s/GB) inverse ratio, so that above 1 always means faster. Undefined
 * when the units differ or the baseline is zero.
 */
export function speedup(row: BenchRow, base: BenchRow): number | undefined {
  if (row.unit !== base.unit || base.value === 0 || row.value === 0) return undefined;
  return row.unit.endsWith("/s") ? row.value / base.value : base.value / row.value;
}

/** The cells of each row: measure, peer, figure, ratio to the section's baseline, note. */
function cells(section: BenchSection): string[][] {
  return section.rows.map((r) => {
    const base = section.rows.find((o) => o.measure === r.measure && o.peer === section.versus);
    const ratio = base && speedup(r, base);
    return [r.measure, r.peer, `${r.value.toFixed(2)} ${r.unit}`, ratio ? `x${ratio.toFixed(2)}` : "-", r.note ?? ""];
  });
}

/** `rows` under `header`, columns padded to one width: markdown's pipes, or the terminal's `a | b`. */
function renderTable(header: string[], rows: string[][], markdown: boolean): string[] {
  const widths = header.map((h, i) => Math.max(3, h.length, ...rows.map((c) => c[i].length)));
  const line = (c: string[]) => {
    const text = c.map((v, i) => v.padEnd(widths[i])).join(" | ");
    return markdown ? `| ${text} |` : text.trimEnd();
  };
  const rule = markdown
    ? `| ${widths.map((w) => "-".repeat(w)).join(" | ")} |`
    : widths.map((w) => "-".repeat(w)).join("-|-");
  return [line(header), rule, ...rows.map(line)];
}

/** The ratio column's header: rates and costs alike, above 1 is faster than the baseline. */
const RATIO = "speed-up (>1: faster)";

/** A section as an aligned text table, its rules and skipped peers below it. */
export function formatSection(section: BenchSection): string {
  const header = [section.title, "peer", "figure", `${RATIO} vs ${section.versus}`, "note"];
  const below = [...(section.rules ? [section.rules] : []), ...(section.skipped ?? []).map((l) => `n/a: ${l}`)];
  return [...renderTable(header, cells(section), false), ...below].join("\n");
}

/**
 * Sections as one markdown table (a column names each row's section and baseline) after `facts`
 * (lines such as the adapter and the date), the skipped peers listed below it.
 */
export function markdownTable(title: string, facts: string[], sections: BenchSection[]): string {
  const header = ["section", "measure", "peer", "figure", "baseline", RATIO, "note"];
  const rows = sections.flatMap((section) =>
    cells(section).map(([measure, peer, figure, ratio, note]) =>
      [
        section.title,
        measure,
        peer,
        figure,
        section.versus,
        ratio,
        note,
      ].map((cell) => cell.replaceAll("|", "\\|"))
    )
  );
  const list = (heading: string, lines: string[]) => lines.length ? ["", heading, "", ...lines] : [];
  return [
    `# ${title}`,
    "",
    ...facts.map((fact) => `- ${fact}`),
    "",
    ...renderTable(header, rows, true),
    ...list("Rules:", sections.filter((s) => s.rules).map((s) => `- ${s.title}: ${s.rules}`)),
    ...list("Not measured here:", sections.flatMap((s) => (s.skipped ?? []).map((line) => `- ${s.title}: ${line}`))),
    "",
  ].join("\n");
}
