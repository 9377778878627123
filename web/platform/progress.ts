/// <reference lib="dom" />
/**
 * A {@linkcode StartProgress} drawn in the page: one row per label with a `<progress>`, done/total, the
 * rate (units per second, since the work started) and the time left at that rate.
 *
 * @module
 */

import type { Progress, StartProgress } from "../../lib/core/progress.ts";

/** `seconds` as `1h 02m`, `3m 05s` or `12s`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "?";
  const s = Math.max(0, Math.round(seconds));
  if (s >= 3600) return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s`;
  return `${s}s`;
}

/** Progress rows in `container`, units called `unit` (e.g. "prompts"); a label started again reuses its row. */
export function progressBars(container: HTMLElement, unit = "prompts", now = () => performance.now()): StartProgress {
  return (label, total) => {
    let row = [...container.querySelectorAll<HTMLElement>(".progress-row")].find((r) => r.dataset.label === label);
    if (!row) {
      row = document.createElement("div");
      row.className = "progress-row";
      row.dataset.label = label;
      row.append(document.createElement("span"), document.createElement("progress"), document.createElement("span"));
      (row.children[0] as HTMLElement).className = "progress-label";
      (row.children[2] as HTMLElement).className = "progress-text";
      (row.children[0] as HTMLElement).textContent = label;
      container.append(row);
    }
    const bar = row.querySelector("progress")!;
    const text = row.querySelector<HTMLElement>(".progress-text")!;
    const started = now();
    let done = 0;
    const draw = (finished = false) => {
      bar.max = Math.max(total, 1);
      bar.value = Math.min(done, total);
      const seconds = (now() - started) / 1000;
      const rate = seconds > 0 ? done / seconds : 0;
      const eta = finished || done >= total
        ? "done"
        : rate > 0
        ? `ETA ${formatDuration((total - done) / rate)}`
        : "ETA ?";
      text.textContent = `${done}/${total} ${unit} · ${rate.toFixed(rate < 10 ? 2 : 1)} ${unit}/s · ${eta}`;
      row!.dataset.done = String(done);
      row!.dataset.total = String(total);
    };
    draw();
    const progress: Progress = {
      tick(n = 1) {
        done += n;
        draw();
      },
      update(value) {
        done = value;
        draw();
      },
      finish() {
        draw(true);
      },
    };
    return progress;
  };
}
