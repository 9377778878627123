/**
 * Assertions for tests: node:assert/strict (JSR's @std/assert is unreachable here), under the names
 * Deno's std uses, so switching back is a one-file change.
 */

import assertModule from "node:assert/strict";
import { UserError } from "../lib/core/errors.ts";

/** Asserts `condition` is truthy. */
export function assert(condition: unknown, message?: string): asserts condition {
  assertModule.ok(condition, message ?? "assertion failed");
}

/** Deep strict equality. */
export function assertEquals<T>(actual: T, expected: T, message?: string): void {
  assertModule.deepStrictEqual(actual, expected, message ?? "values differ");
}

/** Asserts `text` matches `pattern`. */
export function assertMatch(text: string, pattern: RegExp, message?: string): void {
  assertModule.match(text, pattern, message ?? `expected a match for ${pattern}`);
}

/** Asserts `run` throws a {@linkcode UserError} of one line matching `pattern`, and returns it. */
export function assertUserError(run: () => unknown, pattern: RegExp, message?: string): UserError {
  let error: unknown;
  try {
    run();
  } catch (e) {
    error = e;
  }
  assert(error instanceof UserError, `${message ?? "expected a UserError"} for ${pattern}, got ${error}`);
  assert(!error.message.includes("\n"), `${message ?? "the error"}: one line`);
  assertMatch(error.message, pattern, message);
  return error;
}

/**
 * Asserts two byte sequences are identical. On a mismatch it reports the sizes and the first
 * differing offset: a structural diff of large arrays can take gigabytes to build.
 */
export function assertBytesEqual(actual: ArrayBufferView, expected: ArrayBufferView, message?: string): void {
  const a = new Uint8Array(actual.buffer, actual.byteOffset, actual.byteLength);
  const b = new Uint8Array(expected.buffer, expected.byteOffset, expected.byteLength);
  const shorter = Math.min(a.length, b.length);
  let at = 0;
  while (at < shorter && a[at] === b[at]) at++;
  if (at === shorter && a.length === b.length) return;
  const where = at < shorter
    ? `first difference at byte ${at} (actual 0x${hex(a[at])}, expected 0x${hex(b[at])})`
    : `identical up to byte ${at}, where the shorter one ends`;
  assertModule.fail(`${message ?? "bytes differ"}: ${a.length} bytes vs ${b.length} expected, ${where}`);
}

function hex(byte: number): string {
  return byte.toString(16).padStart(2, "0");
}

/** Tolerances of {@linkcode assertClose}. */
export interface Tolerance {
  /** Allowed error relative to each expected element. */
  rtol: number;
  /** Absolute floor, for elements near zero (where a relative error means nothing). */
  atol: number;
  /** Names the compared quantity in the failure message. */
  label?: string;
}

/**
 * Asserts |actual[i] − expected[i]| ≤ atol + rtol·|expected[i]| for every element, and equal
 * lengths. Per element on purpose: a tolerance scaled by the largest value of a tensor lets its
 * small elements be arbitrarily wrong. Reports the first offending index with both values.
 */
export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance: Tolerance): void {
  const { rtol, atol, label = "values" } = tolerance;
  if (actual.length !== expected.length) {
    assertModule.fail(`${label}: ${actual.length} elements, expected ${expected.length}`);
  }
  let first = -1;
  let offending = 0;
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    const [a, e] = [actual[i], expected[i]];
    // Written so that NaN fails, and equal infinities pass.
    if (a === e || Math.abs(a - e) <= atol + rtol * Math.abs(e)) continue;
    if (first < 0) first = i;
    offending++;
    // How far over its allowance the element is, so a failure says how much looser it would need to be.
    worst = Math.max(worst, Number.isFinite(a - e) ? Math.abs(a - e) / (atol + rtol * Math.abs(e)) : Infinity);
  }
  if (first < 0) return;
  const [a, e] = [actual[first], expected[first]];
  assertModule.fail(
    `${label}: element ${first} is ${a}, expected ${e} (|difference| ${
      Math.abs(a - e)
    } > ${atol} + ${rtol}·|expected|); ` +
      `${offending} of ${expected.length} elements outside, the worst ${worst.toPrecision(3)}x its allowance`,
  );
}
