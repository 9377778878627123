/**
 * The mutant runner behind `deno task mutants`: seeds each known bug of a mutant list into a temporary
 * copy of the repository, one at a time, runs only the tests that cover it, and reports whether they
 * killed it (by a test failure, or only by a crash or a timeout) or it survived. A guard that the
 * tests still fail when the code is wrong.
 *
 * Each mutant gets its own fresh rewritten-model cache (MODEL_DIFF_CACHE), so a warm cache cannot
 * serve a graph built by the unmutated code. The working tree is never modified.
 *
 * @module
 */

import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { UserError } from "../core/errors.ts";
import { ensureAllFixtures, fixtureRoot } from "../fixtures/build.ts";

/** One known bug: replace `search` (which must occur exactly once) in `file` by `replace`. */
export interface Mutant {
  id: string;
  description?: string;
  file: string;
  search: string;
  replace: string;
  /** Test files that cover it, relative to the repository root. */
  tests: string[];
  /** Passed to `deno test --filter`, to run only the covering tests of those files. */
  filter?: string;
}

/** How a run of the covering tests ended. */
export type Outcome =
  | { kind: "test failure"; failed: string[] }
  | { kind: "crash"; detail: string }
  | { kind: "timeout" }
  | { kind: "passed" }
  | { kind: "no tests ran" };

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** Parses and checks the mutant list. */
export function parseMutants(text: string, source: string): Mutant[] {
  const list = JSON.parse(text) as unknown;
  if (!Array.isArray(list)) throw new UserError(`${source} must hold a JSON array of mutants`);
  const ids = new Set<string>();
  return list.map((entry, i) => {
    const m = entry as Partial<Mutant>;
    const strings = [m.id, m.file, m.search, m.replace].every((s) => typeof s === "string" && s.length > 0);
    if (!strings || !Array.isArray(m.tests) || !m.tests.length) {
      throw new UserError(`${source}: entry ${i} needs id, file, search, replace and a non-empty tests list`);
    }
    if (ids.has(m.id!)) throw new UserError(`${source}: duplicate mutant id ${m.id}`);
    ids.add(m.id!);
    return m as Mutant;
  });
}

/** `text` with the mutant applied, or why it cannot be (a stale list). */
export function applyMutant(text: string, mutant: Mutant): { text: string } | { error: string } {
  const count = text.split(mutant.search).length - 1;
  if (count !== 1) {
    return {
      error: count === 0
        ? `search text not found in ${mutant.file} (stale list?)`
        : `search text occurs ${count} times in ${mutant.file}: make it unique`,
    };
  }
  return { text: text.replace(mutant.search, () => mutant.replace) };
}

/** Reads how a `deno test` run ended from its exit code and (colourless) output. */
export function classifyRun(code: number, output: string, timedOut: boolean): Outcome {
  if (timedOut) return { kind: "timeout" };
  const summary = /^(ok|FAILED) \| (\d+) passed(?: \(\d+ steps?\))? \| (\d+) failed/m.exec(output);
  if (code === 0) return summary && Number(summary[2]) > 0 ? { kind: "passed" } : { kind: "no tests ran" };
  if (summary && Number(summary[3]) > 0) {
    // The FAILURES section lists each failed test as "name => file:line:col".
    const section = output.slice(Math.max(0, output.search(/^ FAILURES $/m)));
    const failed = [...section.matchAll(/^(.+?) => \S+:\d+:\d+$/gm)].map((m) => m[1]);
    return { kind: "test failure", failed };
  }
  const lines = output.trim().split("\n").filter((l) => l.trim());
  return { kind: "crash", detail: `exit code ${code}: ${lines.slice(-3).join(" / ").slice(0, 300)}` };
}

/** Tracked and untracked, not ignored files of the repository: what a copy needs. */
async function repositoryFiles(): Promise<string[]> {
  const { success, stdout } = await new Deno.Command("git", {
    args: ["-C", ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!success) throw new UserError("git ls-files failed: the mutant runner needs the repository's git checkout");
  return new TextDecoder().decode(stdout).split("\0").filter(Boolean);
}

/**
 * Copies the repository's files into `dir` and installs its npm packages there. (A symlinked
 * node_modules is not enough: Deno refuses the dynamic imports onnxruntime-web makes through it.
 * `deno install` fills the copy from Deno's global cache, by hard links where it can.)
 */
async function copyRepository(files: string[], dir: string): Promise<void> {
  for (const file of files) {
    const source = join(ROOT, file);
    const info = await Deno.lstat(source).catch(() => null);
    if (!info?.isFile) continue; // deleted in the working tree, or a link
    await Deno.mkdir(dirname(join(dir, file)), { recursive: true });
    await Deno.copyFile(source, join(dir, file));
  }
  const install = await new Deno.Command(Deno.execPath(), {
    args: ["install"],
    cwd: dir,
    stdout: "null",
    stderr: "piped",
  })
    .output();
  if (!install.success) {
    throw new UserError(`deno install failed in the copy: ${new TextDecoder().decode(install.stderr).trim()}`);
  }
}

/** Runs `deno test` on `tests` in the copy `dir`, with its own rewrite cache, within `timeoutMs`. */
async function runTests(dir: string, tests: string[], filter: string | undefined, timeoutMs: number) {
  const args = ["test", "-A", ...(filter ? ["--filter", filter] : []), ...tests];
  const child = new Deno.Command(Deno.execPath(), {
    args,
    cwd: dir,
    env: {
      MODEL_DIFF_CACHE: join(dir, ".cache", "rewritten"),
      MODEL_DIFF_FIXTURES: fixtureRoot(),
      NO_COLOR: "1",
    },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill("SIGKILL");
  }, timeoutMs);
  const [status, stdout, stderr] = await Promise.all([
    child.status,
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
  ]);
  clearTimeout(timer);
  return classifyRun(status.code, `${stdout}\n${stderr}`, timedOut);
}

function describe(outcome: Outcome): string {
  switch (outcome.kind) {
    case "test failure":
      return `test failure: ${outcome.failed.join("; ") || "(names not found in the output)"}`;
    case "crash":
      return `crash (${outcome.detail})`;
    default:
      return outcome.kind;
  }
}

/** What `deno task mutants` was asked. */
export interface MutantsOptions {
  /** The mutant list, relative to the repository root (or absolute). */
  list: string;
  /** Comma-separated ids to run (default: all). */
  only?: string;
  /** Milliseconds per mutant's test run. */
  timeoutMs: number;
  /** Skip checking that the covering tests pass on the unmutated code. */
  noBaseline?: boolean;
}

/** The mutants of `list` named by `only` (all without it); an unknown id is a {@linkcode UserError}. */
function selectMutants(list: Mutant[], only: string | undefined): Mutant[] {
  if (!only) return list;
  const ids = only.split(",").map((s) => s.trim());
  const unknown = ids.filter((id) => !list.some((m) => m.id === id));
  if (unknown.length) throw new UserError(`unknown mutant id ${unknown.join(", ")}`);
  return list.filter((m) => ids.includes(m.id));
}

/** Runs `mutant`'s covering tests in a fresh copy with the bug seeded; its verdict line and whether it was killed. */
async function judge(
  mutant: Mutant,
  copy: (name: string) => Promise<string>,
  timeoutMs: number,
): Promise<{ verdict: string; ok: boolean }> {
  const dir = await copy(mutant.id);
  try {
    const target = join(dir, mutant.file);
    const applied = applyMutant(await Deno.readTextFile(target).catch(() => ""), mutant);
    if ("error" in applied) return { verdict: `ERROR     ${applied.error}`, ok: false };
    await Deno.writeTextFile(target, applied.text);
    const started = performance.now();
    const outcome = await runTests(dir, mutant.tests, mutant.filter, timeoutMs);
    const seconds = ((performance.now() - started) / 1000).toFixed(0);
    const label = outcome.kind === "passed" ? "SURVIVED" : outcome.kind === "no tests ran" ? "ERROR   " : "KILLED  ";
    return { verdict: `${label}  ${describe(outcome)} (${seconds} s)`, ok: outcome.kind === "test failure" };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Judges every selected mutant of `options.list` (after checking, unless `noBaseline`, that their
 * covering tests pass on the unmutated code), each verdict and the summary through `log`. Throws a
 * {@linkcode UserError} unless every mutant was killed by a test failure.
 */
export async function runMutants(options: MutantsOptions, log: (line: string) => void): Promise<void> {
  const list = resolve(ROOT, options.list);
  const mutants = selectMutants(parseMutants(await Deno.readTextFile(list), list), options.only);
  // Built once from the unmutated code and only read by the copies, so no mutant can change them.
  await ensureAllFixtures(log);
  const files = await repositoryFiles();
  const scratch = await Deno.makeTempDir({ prefix: "model-diff-mutants-" });
  // An interrupted run removes its copies too (a finally block does not run on a signal).
  const interrupted = () => {
    Deno.removeSync(scratch, { recursive: true });
    Deno.exit(130);
  };
  for (const signal of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(signal, interrupted);
  const results: { mutant: Mutant; verdict: string; ok: boolean }[] = [];
  try {
    const copy = async (name: string) => {
      const dir = join(scratch, name);
      await copyRepository(files, dir);
      return dir;
    };
    if (!options.noBaseline) {
      // A mutant only counts as killed if the same tests pass on the unmutated code.
      const groups = new Map(mutants.map((m) => [JSON.stringify([m.tests, m.filter ?? null]), m]));
      const dir = await copy("baseline");
      for (const m of groups.values()) {
        const started = performance.now();
        const outcome = await runTests(dir, m.tests, m.filter, options.timeoutMs);
        const seconds = ((performance.now() - started) / 1000).toFixed(0);
        log(`baseline ${m.tests.join(" ")}${m.filter ? ` (${m.filter})` : ""}: ${describe(outcome)} (${seconds} s)`);
        if (outcome.kind !== "passed") {
          throw new UserError(`the unmutated code fails ${m.tests.join(" ")}: fix that before judging mutants`);
        }
      }
      await Deno.remove(dir, { recursive: true });
    }
    for (const mutant of mutants) {
      const { verdict, ok } = await judge(mutant, copy, options.timeoutMs);
      log(`${mutant.id}: ${verdict}`);
      results.push({ mutant, verdict, ok });
    }
  } finally {
    for (const signal of ["SIGINT", "SIGTERM"] as const) Deno.removeSignalListener(signal, interrupted);
    await Deno.remove(scratch, { recursive: true }).catch(() => {});
  }
  const width = Math.max(...results.map((r) => r.mutant.id.length));
  log(`\nmutants (${relative(ROOT, options.list) || options.list}):`);
  for (const { mutant, verdict } of results) log(`  ${mutant.id.padEnd(width)}  ${verdict}`);
  const good = results.filter((r) => r.ok).length;
  log(`${good} of ${results.length} killed by a test failure`);
  if (good < results.length) {
    throw new UserError(`${results.length - good} mutant(s) not killed by a test failure: see above`);
  }
}
