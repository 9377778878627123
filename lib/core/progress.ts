/**
 * How long work reports how far along it is: the core is handed a {@linkcode StartProgress} and
 * never draws anything itself (the CLI's is a terminal bar, lib/io/progress.ts; a page's would be a
 * progress element).
 *
 * @module
 */

/** One piece of work under way. */
export interface Progress {
  /** `n` more units done (default 1). */
  tick(n?: number): void;
  /** `done` units done in all (for callers that know the absolute count). */
  update(done: number): void;
  /** The work ended. */
  finish(): void;
}

/** Starts showing the progress of `total` units of work called `label`. */
export type StartProgress = (label: string, total: number) => Progress;
