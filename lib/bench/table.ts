/**
 * Bench rows and their text table: each figure beside its ratio to a named peer of the same measure,
 * measured in the same run.
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

/** The median of `reps` timed runs of `run` in seconds, after one untimed warm-up run. */
export async function medianSeconds(reps: number, run: () => Promise<unknown>): Promise<number> {
  await run();
  const times: number[] = [];
  for (let i = 0; i < Math.max(1, reps); i++) {
    const start = performance.now();
    await run();
    times.push((performance.now() - start) / 1000);
  }
  return times.sort((a, b) => a - b)[Math.floor(times.length / 2)];
}

/**
 * The median seconds of each of `runs`, timed in turn `reps` times (after one untimed round), so that
 * load from other processes falls on every peer alike.
 */
export async function interleavedMedians(reps: number, runs: (() => Promise<unknown>)[]): Promise<number[]> {
  for (const run of runs) await run();
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
 * The rows as an aligned table under `title`; rates (units ending in "/s") also as a ratio to the row
 * of the same measure whose peer is `versus`.
 */
export function formatRows(title: string, rows: BenchRow[], versus: string): string {
  const ratio = (r: BenchRow) => {
    const peer = rows.find((o) => o.measure === r.measure && o.peer === versus);
    return peer && r.unit.endsWith("/s") ? `x${(r.value / peer.value).toFixed(2)}` : "";
  };
  const cells = rows.map((r) => [r.measure, r.peer, `${r.value.toFixed(2)} ${r.unit}`, ratio(r), r.note ?? ""]);
  const header = [title, "peer", "figure", `vs ${versus}`, ""];
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]) => c.map((v, i) => v.padEnd(widths[i])).join(" | ").trimEnd();
  return [line(header), widths.map((w) => "-".repeat(w)).join("-|-"), ...cells.map(line)].join("\n");
}
