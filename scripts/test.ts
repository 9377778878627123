/**
 * `deno task test`: the README's test command (lib/dev/test_runner.ts). Builds every fixture once,
 * then runs the test files in `--jobs` parallel `deno test` processes balanced by their recorded
 * durations, and ends with one `ok | N passed | M failed` line over all of them (CI reads it). With
 * test files or `--filter`, it is plain `deno test` on those, in one process.
 */

import { parseFlags, positiveInt } from "../lib/cli/flags.ts";
import { TEST } from "../lib/cli/commands.ts";
import { runPlain, runSuite } from "../lib/dev/test_runner.ts";
import { runMain } from "../lib/cli/main.ts";

await runMain(async () => {
  const { values, positionals } = parseFlags(Deno.args, TEST);
  if (positionals.length || values.filter !== undefined) Deno.exit(await runPlain(positionals, values.filter));
  const jobs = positiveInt("jobs", values.jobs, Math.min(4, navigator.hardwareConcurrency));
  await runSuite({ jobs, record: values.record }, console.log);
});
