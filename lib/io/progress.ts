/**
 * A progress bar with rate and ETA on stderr: redrawn in place on a terminal, a line per 10% otherwise
 * (logs and CI stay readable).
 *
 * @module
 */

import type { Progress, StartProgress } from "../core/progress.ts";

/** Formats seconds as m:ss or h:mm:ss. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "?";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

/** Progress of `total` units of work (`unit`: what is counted, e.g. "prompts"). */
export class ProgressBar implements Progress {
  #done = 0;
  #started = performance.now();
  #lastDecile = -1;
  readonly #tty = Deno.stderr.isTerminal();
  readonly #encoder = new TextEncoder();

  readonly #baseline: number;

  /** `initial` units were done before (a resumed run): they count for the bar, not for the rate. */
  constructor(readonly label: string, readonly total: number, readonly unit = "it", initial = 0) {
    this.#done = initial;
    this.#baseline = initial;
  }

  /** Records `n` more units done and redraws. */
  tick(n = 1): void {
    this.#done = Math.min(this.total, this.#done + n);
    this.#render(false);
  }

  /** Sets the number of units done (for callers that know the absolute count) and redraws. */
  update(done: number): void {
    this.#done = Math.min(this.total, done);
    this.#render(false);
  }

  /** Finishes the bar (prints the final state on its own line). */
  finish(): void {
    this.#render(true);
  }

  /** The current line: label, bar, count, rate and ETA. */
  line(): string {
    const elapsed = (performance.now() - this.#started) / 1000;
    const rate = (this.#done - this.#baseline) / Math.max(elapsed, 1e-9);
    const eta = rate > 0 ? (this.total - this.#done) / rate : Infinity;
    const fraction = this.total ? this.#done / this.total : 1;
    const width = 24;
    const filled = Math.round(fraction * width);
    const bar = "#".repeat(filled) + ".".repeat(width - filled);
    const rateText = rate >= 1 || rate === 0
      ? `${rate.toFixed(1)} ${this.unit}/s`
      : `${(1 / rate).toFixed(1)} s/${this.unit}`;
    return `${this.label} [${bar}] ${this.#done}/${this.total} ${rateText} elapsed ${formatDuration(elapsed)} ETA ${
      formatDuration(this.#done >= this.total ? 0 : eta)
    }`;
  }

  #render(final: boolean): void {
    if (this.#tty) {
      Deno.stderr.writeSync(this.#encoder.encode(`\r${this.line()}${final ? "\n" : ""}`));
      return;
    }
    const decile = Math.floor((this.#done / Math.max(this.total, 1)) * 10);
    if (decile === this.#lastDecile) return;
    this.#lastDecile = decile;
    console.error(this.line());
  }
}

/** A terminal bar in prompts per second for each piece of work: what the tasks show. */
export const promptBars: StartProgress = (label, total) => new ProgressBar(label, total, "prompts");
