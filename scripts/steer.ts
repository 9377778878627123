/**
 * `deno task steer --mag -3,3`: generate with a vector added to (or otherwise applied to) the residual
 * stream after a layer, at each magnitude, for each prompt; results go to
 * `{model_short}_layer{L}_steer.json`, which later runs extend, and to the `swapped_user_role.json`
 * export. Each response streams to the terminal as it is generated.
 */

import { layerFlag, numberFlag, parseFlags, positiveInt } from "../lib/cli/flags.ts";
import { STEER, STEER_DEFAULTS } from "../lib/cli/commands.ts";
import { runMain } from "../lib/cli/main.ts";
import { ensureFixtureModel } from "../lib/fixtures/build.ts";
import { ROLE_PROMPTS } from "../lib/fixtures/role_prompts.ts";
import { promptsFromFlags } from "../lib/cli/prompts.ts";
import { BASELINE_KEY, parseMagnitudes } from "../lib/run/steer_results.ts";
import { runSteer } from "../lib/run/steer.ts";
import { parseDevice, resolveDevice } from "../lib/backend/device.ts";
import { graphDtype, parseDtype } from "../lib/runtime/runtime.ts";
import { parseInterventionKind, parsePositions } from "../lib/graph/steering.ts";

await runMain(async () => {
  const { values } = parseFlags(Deno.args, STEER);
  const magnitudes: (number | typeof BASELINE_KEY)[] = parseMagnitudes(values.mag!);
  if (values.baseline) magnitudes.unshift(BASELINE_KEY);
  const device = await resolveDevice(parseDevice(values.device!), console.log);
  const encoder = new TextEncoder();
  const run = await runSteer({
    source: values.model ?? await ensureFixtureModel("tiny-gemma2-chat", console.log),
    layer: values.layer === undefined ? undefined : (layers) => layerFlag(values.layer!, layers),
    device,
    dtype: await graphDtype(device, parseDtype(values.dtype)),
    kind: parseInterventionKind(values.kind!),
    positions: parsePositions(values.positions!),
    magnitudes,
    prompts: await promptsFromFlags(values, ROLE_PROMPTS, console.log),
    samples: positiveInt("samples", values.samples, STEER_DEFAULTS.samples),
    resume: values.resume!,
    // The notebook's 300 new tokens for real models; the built-in fixture only needs enough to show
    // the effect, which keeps the demo to about a minute on a CPU-only machine.
    maxNewTokens: positiveInt(
      "max-new-tokens",
      values["max-new-tokens"],
      values.model ? STEER_DEFAULTS.maxNewTokens : STEER_DEFAULTS.fixtureMaxNewTokens,
    ),
    sampling: values.greedy ? { greedy: true } : {
      temperature: numberFlag("temperature", values.temperature, STEER_DEFAULTS.temperature),
      repetitionPenalty: numberFlag(
        "repetition-penalty",
        values["repetition-penalty"],
        STEER_DEFAULTS.repetitionPenalty,
      ),
      suppress: !values["no-suppress"],
    },
    seed: numberFlag("seed", values.seed, 0),
    vector: values.vector,
    vectorName: values["vector-name"],
    // On the built-in model the sweep reads at the "assistant" token, where the fixture's plant
    // (lib/fixtures/plant.ts) puts a known assistant direction for the vector to find; real models
    // get sweep-layers' default, the last token.
    sweepPosition: values.model ? undefined : "asst",
    short: values["model-short"],
    outDir: values["out-dir"],
    log: console.log,
    onText: (text) => Deno.stdout.writeSync(encoder.encode(text)),
  });
  console.log(`\n${run.generated} response(s) generated; results in ${run.resultsPath}, export in ${run.exportPath}`);
});
