/**
 * `deno task bench`: throughput of our WGSL SAE encoder against peers measured in the same run on the
 * same inputs and under the same rules, the CPU encode, and whole tasks per device (lib/bench/run.ts);
 * `--convert` measures checkpoint conversion, `--report FILE` writes the whole set a GPU machine should
 * record as one markdown table. Prints tables of ratios; runs unchanged on a real GPU.
 */

import { runBench } from "../lib/bench/run.ts";
import { parseFlags, positiveInt } from "../lib/cli/flags.ts";
import { BENCH } from "../lib/cli/commands.ts";
import { runMain } from "../lib/cli/main.ts";

await runMain(async () => {
  const { values } = parseFlags(Deno.args, BENCH);
  await runBench({
    shapes: values.shapes!,
    reps: positiveInt("reps", values.reps, 3),
    only: values.only,
    convert: values.convert,
    checkpoint: values.checkpoint,
    report: values.report,
    quick: values.quick,
  });
});
