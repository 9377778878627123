/**
 * Assertions for tests: node:assert/strict (JSR's @std/assert is unreachable here), under the names
 * Deno's std uses, so switching back is a one-file change.
 */

import assertModule from "node:assert/strict";

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
