/**
 * The test runner behind `deno task test`: builds every fixture once, then deals the test files into
 * `jobs` groups balanced by their recorded durations (tests/durations.json) and runs the groups at the
 * same time, each as its own `deno test` process: most tests keep one core busy, so on a 2-core
 * machine two processes nearly halve the wait. Processes rather than `deno test --parallel` (workers
 * of one process) because tests set process-wide environment variables, such as cache roots, that
 * must not reach files running beside them. Output is shown line by line, prefixed by group; the run
 * ends with one summary line in `deno test`'s own format over all groups (CI reads it).
 *
 * With test files or a filter, it is plain `deno test` on those, in one process.
 *
 * @module
 */

import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { UserError } from "../core/errors.ts";
import { ensureAllFixtures } from "../fixtures/build.ts";
import { FIXTURE_MODELS } from "../fixtures/spec.ts";
import { resolveModelDir } from "../models/hub.ts";
import { writeJsonAtomic } from "../io/atomic.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const DURATIONS = join(ROOT, "tests", "durations.json");
/** Seconds assumed for a test file that has no recorded duration yet. */
const UNKNOWN_SECONDS = 10;

/** The test files (`*_test.ts`) under `dir`, relative to the repository root, sorted. */
export async function testFiles(dir: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (path: string) => {
    for await (const entry of Deno.readDir(path)) {
      if (entry.isDirectory) await walk(join(path, entry.name));
      else if (entry.name.endsWith("_test.ts")) found.push(relative(ROOT, join(path, entry.name)));
    }
  };
  await walk(dir);
  return found.sort();
}

/**
 * Longest first, each file to the group with the least seconds so far (ties: the lower group), so
 * the groups end close together. Files without a recorded duration count {@linkcode UNKNOWN_SECONDS}.
 * A group left without a file (files recorded at 0 s all tie on the first group) is dropped: `deno
 * test` given no file would run every test file it finds, scripts/test.ts included, which runs the
 * suite again, and so on.
 */
export function dealFiles(files: readonly string[], seconds: Record<string, number>, jobs: number): string[][] {
  const groups = Array.from({ length: Math.max(1, Math.min(jobs, files.length)) }, () => ({
    files: [] as string[],
    total: 0,
  }));
  const weight = (file: string) => seconds[file] ?? UNKNOWN_SECONDS;
  const ordered = [...files].sort((a, b) => weight(b) - weight(a) || a.localeCompare(b));
  for (const file of ordered) {
    const lightest = groups.reduce((best, g) => g.total < best.total ? g : best);
    lightest.files.push(file);
    lightest.total += weight(file);
  }
  return groups.map((g) => g.files.sort()).filter((g) => g.length);
}

/** The counts of `deno test`'s closing line (`ok | 12 passed | 0 failed (3s)`); undefined when it has none. */
export function parseSummary(output: string): { passed: number; failed: number } | undefined {
  // Colours stay on when the output is piped; ESC [ ... m sequences are stripped first.
  const plain = output.replaceAll(new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, "g"), "");
  const lines = plain.split("\n").filter((line) => /^(ok|FAILED) \| \d+ passed/.test(line.trim()));
  const last = lines.at(-1);
  if (!last) return undefined;
  const count = (word: string) => Number(new RegExp(`(\\d+) ${word}`).exec(last)?.[1] ?? 0);
  return { passed: count("passed"), failed: count("failed") };
}

/** Seconds per test file (the sum of its test cases') from a `deno test --junit-path` report. */
export function junitDurations(xml: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const suite of xml.split("<testsuite ").slice(1)) {
    const name = /^name="\.\/([^"]+)"/.exec(suite)?.[1];
    if (!name) continue;
    const times = [...suite.matchAll(/<testcase [^>]*time="([\d.]+)"/g)].map((m) => Number(m[1]));
    out[name] = Math.round(times.reduce((s, t) => s + t, 0) * 10) / 10;
  }
  return out;
}

/** `deno test`'s way of writing a duration: `950ms`, `12s`, `3m4s`. */
export function formatElapsed(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${s % 60}s`;
}

/**
 * Runs one group's `deno test`, echoing its output line by line behind `[n]` through `log`; returns its
 * output and exit code.
 */
async function runGroup(
  n: number,
  files: string[],
  junit: string,
  log: (line: string) => void,
): Promise<{ output: string; code: number }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["test", "-A", `--junit-path=${junit}`, ...files],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let output = "";
  // BufferSource, not Uint8Array: what TextDecoderStream takes under both Deno's and the DOM's typings
  // (`deno check` reads the browser tests, tests/web/, in the same program).
  const echo = async (stream: ReadableStream<BufferSource>) => {
    let pending = "";
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      const lines = (pending + text).split("\n");
      pending = lines.pop()!;
      for (const line of lines) {
        output += line + "\n";
        log(`[${n}] ${line}`);
      }
    }
    if (pending) {
      output += pending + "\n";
      log(`[${n}] ${pending}`);
    }
  };
  const [{ code }] = await Promise.all([child.status, echo(child.stdout), echo(child.stderr)]);
  return { output, code };
}

/** Builds every fixture, and the fp32 graph of each checkpoint fixture, before processes race to. */
async function buildFixtures(): Promise<void> {
  const dirs = await ensureAllFixtures((line) => console.error(line));
  for (const spec of FIXTURE_MODELS) {
    if (spec.checkpoint) await resolveModelDir(dirs[spec.name], { dtype: "fp32" });
  }
}

/** Plain `deno test` on `paths` (default: all of tests/), optionally filtered, in one process; its exit code. */
export async function runPlain(paths: string[], filter: string | undefined): Promise<number> {
  const args = [
    "test",
    "-A",
    ...(filter !== undefined ? ["--filter", filter] : []),
    ...(paths.length ? paths : ["tests/"]),
  ];
  return (await new Deno.Command(Deno.execPath(), { args, cwd: ROOT }).spawn().status).code;
}

/**
 * The whole suite in `jobs` parallel processes, their output and the closing `ok | N passed | M
 * failed (time)` line through `log`; with `record`, each file's duration in this run is written to
 * tests/durations.json. Throws a {@linkcode UserError} when a test failed.
 */
export async function runSuite(
  options: { jobs: number; record?: boolean },
  log: (line: string) => void,
): Promise<void> {
  const started = performance.now();
  await buildFixtures();
  const recorded = await Deno.readTextFile(DURATIONS).then(
    (t) => JSON.parse(t) as Record<string, number>,
    () => ({}),
  );
  const groups = dealFiles(await testFiles(join(ROOT, "tests")), recorded, options.jobs);
  log(`${groups.flat().length} test files in ${groups.length} parallel deno test processes`);
  const temp = await Deno.makeTempDir({ prefix: "model-diff-test-" });
  try {
    const runs = await Promise.all(groups.map((files, i) => runGroup(i + 1, files, join(temp, `${i}.xml`), log)));
    let [passed, failed] = [0, 0];
    runs.forEach((run, i) => {
      const summary = parseSummary(run.output);
      passed += summary?.passed ?? 0;
      // A process that ended without a failed test to show for its failure (a crash, a failed type
      // check, no summary at all) counts as one failure more.
      const crashed = !summary || (run.code !== 0 && !summary.failed);
      failed += (summary?.failed ?? 0) + (crashed ? 1 : 0);
      if (crashed) {
        log(
          `group ${i + 1} (${groups[i].join(", ")}) exited with code ${run.code} and ${
            summary ? "no failed test" : "no summary"
          }`,
        );
      }
    });
    if (options.record) {
      const measured = {} as Record<string, number>;
      for (let i = 0; i < groups.length; i++) {
        Object.assign(measured, junitDurations(await Deno.readTextFile(join(temp, `${i}.xml`)).catch(() => "")));
      }
      const sorted = Object.fromEntries(
        Object.entries({ ...recorded, ...measured }).sort(([a], [b]) => a < b ? -1 : 1),
      );
      await writeJsonAtomic(DURATIONS, sorted);
    }
    log(
      `${failed ? "FAILED" : "ok"} | ${passed} passed | ${failed} failed (${
        formatElapsed(performance.now() - started)
      })`,
    );
    if (failed) throw new UserError(`${failed} test${failed === 1 ? "" : "s"} failed`);
  } finally {
    await Deno.remove(temp, { recursive: true });
  }
}
