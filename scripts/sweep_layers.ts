/**
 * `deno task sweep-layers`: compare residual activations of normal vs role-swapped chat prompts at
 * every layer (cosine-similarity matrices on the GPU), derive the contrast vector per layer
 * (mean normal − mean swapped), and plot the sweep. All layers come from one forward pass per prompt
 * set.
 */

import { join } from "node:path";
import { parseTokenTypes } from "../lib/runtime/chat.ts";
import { parseFlags, positiveInt } from "../lib/cli/flags.ts";
import { SWEEP_LAYERS } from "../lib/cli/commands.ts";
import { runMain } from "../lib/cli/main.ts";
import { UserError } from "../lib/core/errors.ts";
import { ensureFixtureModel } from "../lib/fixtures/build.ts";
import { ROLE_PROMPTS } from "../lib/fixtures/role_prompts.ts";
import { modelShortName, readModelShape, resolveModelDir } from "../lib/models/hub.ts";
import { ensureOutDir } from "../lib/io/atomic.ts";
import { promptsFromFlags } from "../lib/cli/prompts.ts";
import { promptBars } from "../lib/io/progress.ts";
import { writeSweepOutputs } from "../lib/report/sweep.ts";
import { parseDevice, resolveDevice } from "../lib/backend/device.ts";
import { graphDtype, parseDtype } from "../lib/runtime/runtime.ts";
import { roleSwapSweep } from "../lib/run/contrast.ts";
import { dirOutput } from "../lib/io/dir_output.ts";

await runMain(async () => {
  const { values } = parseFlags(Deno.args, SWEEP_LAYERS);
  const device = await resolveDevice(parseDevice(values.device!), console.log);
  const dtype = await graphDtype(device, parseDtype(values.dtype));
  const position = values.position === "last" ? undefined : parseTokenTypes(values.position!);
  if (position && position.length !== 1) throw new UserError("--position takes one read position");
  const batchSize = positiveInt("batch-size", values["batch-size"], 8);
  const maxLength = positiveInt("max-length", values["max-length"], 512);
  const source = values.model ?? await ensureFixtureModel("tiny-gemma2-chat", console.log);
  const prompts = await promptsFromFlags(values, ROLE_PROMPTS, console.log);
  if (prompts.length < 2) {
    throw new UserError("the sweep needs at least two prompts (similarities are between prompts)");
  }
  const shape = await readModelShape(await resolveModelDir(source, { dtype }));
  const layers = Array.from({ length: shape.layers }, (_, l) => l);
  const short = values["model-short"] ?? modelShortName(source);
  const outDir = values["out-dir"] ?? join("results", short);
  await ensureOutDir(outDir);

  const run = await roleSwapSweep({
    source,
    layers,
    prompts,
    position: position?.[0],
    batchSize,
    maxLength,
    device,
    dtype,
    log: console.log,
    progress: promptBars,
  });
  const written = await writeSweepOutputs(dirOutput(outDir), run.sweep, {
    model: source,
    short,
    position: position?.[0] ?? "last",
    prompts,
    normalTexts: run.normalTexts,
    swappedTexts: run.swappedTexts,
  });
  console.log(written.summary);
  console.log(`results in ${outDir}: ${written.files.join(", ")}`);
});
