/**
 * Temporary directories for tests: one per test file, removed when the file's tests end, so a test
 * run leaves nothing behind in the system temp dir. (A module of its own so that light tests need not
 * load the model runtime that tests/helpers.ts imports.)
 */

import { join } from "node:path";

let fileTempRoot: string | undefined;

/**
 * A fresh directory for one test, inside the one temporary directory of this test file, which is
 * removed when the file's tests end (pass or fail), so a run leaves nothing in the system temp dir.
 */
export async function tempDir(prefix = "tmp-"): Promise<string> {
  if (!fileTempRoot) {
    const root = await Deno.makeTempDir({ prefix: "model-diff-test-" });
    fileTempRoot = root;
    // Each test file runs in its own worker, which fires "unload" after its last test, failed or not.
    globalThis.addEventListener("unload", () => Deno.removeSync(root, { recursive: true }));
  }
  return await Deno.makeTempDir({ dir: fileTempRoot, prefix });
}

/** A path for a new file in a fresh {@linkcode tempDir}. */
export async function tempFile(name: string): Promise<string> {
  return join(await tempDir("file-"), name);
}
