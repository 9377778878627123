/**
 * Finite-number guarantees at the boundaries: a NaN or an infinity in a weight file would otherwise
 * flow through every matmul and come out as NaN statistics, `<pad>` generations or silently disabled
 * features, with exit 0. Each file is checked once where it enters (converted, referenced in place,
 * or loaded), and the error names the file, the tensor and the first bad index.
 *
 * @module
 */

import { UserError } from "../core/errors.ts";

/** Whether {@linkcode assertFinite} checks; only the benchmark turns it off, to price the check. */
let checking = true;

/**
 * Skips every finite check from now on (`true`) or checks again (`false`); returns the previous
 * setting. A seam for the benchmark's peer without the check (lib/bench/finite_check.ts), never for a run.
 */
export function skipFiniteChecksForBench(skip: boolean): boolean {
  const previous = !checking;
  checking = !skip;
  return previous;
}

/** Index of the first NaN or ±Infinity in `values`, or -1 when every value is finite. */
export function firstNonFinite(values: ArrayLike<number>): number {
  for (let i = 0; i < values.length; i++) {
    const x = values[i];
    // x - x is 0 for every finite x and NaN for NaN and ±Infinity: one subtraction, no call.
    if (x - x !== 0) return i;
  }
  return -1;
}

/** What to do about a weight file holding a non-finite value (the usual causes). */
export const NON_FINITE_FIX =
  "the file is damaged (download it again) or was saved from a run that diverged (use an earlier checkpoint)";

/**
 * Throws a {@linkcode UserError} when `values` holds NaN or ±Infinity: `<file>: tensor <name> holds NaN
 * at index i of n: <fix>`. `offset` is added to the index (for a tensor checked in chunks), `total`
 * is its full length.
 */
export function assertFinite(
  values: ArrayLike<number>,
  where: { file: string; tensor: string; offset?: number; total?: number; fix?: string },
): void {
  if (!checking) return;
  const i = firstNonFinite(values);
  if (i < 0) return;
  const index = (where.offset ?? 0) + i;
  throw new UserError(
    `${where.file}: tensor ${where.tensor} holds ${values[i]} at index ${index} of ${where.total ?? values.length}: ${
      where.fix ?? NON_FINITE_FIX
    }`,
  );
}
