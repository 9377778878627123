/**
 * `deno task mutants`: seeds each known bug of `tests/mutants.json` into a temporary copy of the
 * repository, one at a time, runs only the tests that cover it, and reports whether they killed it
 * (lib/dev/mutants.ts). A guard that the tests still fail when the code is wrong; run it after
 * touching the covered code. The working tree is never modified.
 */

import { parseFlags, positiveInt } from "../lib/cli/flags.ts";
import { MUTANTS } from "../lib/cli/commands.ts";
import { runMutants } from "../lib/dev/mutants.ts";
import { runMain } from "../lib/cli/main.ts";

await runMain(async () => {
  const { values } = parseFlags(Deno.args, MUTANTS);
  const timeoutMs = positiveInt("timeout", values.timeout, 600) * 1000;
  await runMutants(
    { list: values.list!, only: values.only, timeoutMs, noBaseline: values["no-baseline"] },
    console.log,
  );
});
