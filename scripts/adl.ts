/**
 * `deno task adl`: the activation-difference lens. The mean difference of the chat and base models'
 * residuals after a layer, per read position, read through the chat model's final norm and
 * unembedding (top promoted and suppressed tokens), compared with the role-swap contrast vector of
 * every layer, and saved as steering vectors for `deno task steer --vector`.
 *
 * Its own task rather than `diff --adl`: it needs no SAE, statistics, shards or checkpoints, and its
 * flags (--first-n, --contrast) mean nothing to the diff.
 */

import { parseTokenTypes } from "../lib/runtime/chat.ts";
import { layerFlag, nonNegativeInt, parseFlags, positiveInt } from "../lib/cli/flags.ts";
import { ADL, ADL_DEFAULTS } from "../lib/cli/commands.ts";
import { runMain } from "../lib/cli/main.ts";
import { pairOrDemo } from "../lib/fixtures/build.ts";
import { DEMO_PROMPTS } from "../lib/fixtures/prompts.ts";
import { ROLE_PROMPTS } from "../lib/fixtures/role_prompts.ts";
import { sampledPromptsFromFlags } from "../lib/cli/prompts.ts";
import { adlSummary, runAdl } from "../lib/run/adl.ts";
import { parseDevice, resolveDevice } from "../lib/backend/device.ts";
import { graphDtype, parseDtype } from "../lib/runtime/runtime.ts";

await runMain(async () => {
  const { values } = parseFlags(Deno.args, ADL);
  const demo = !values.base && !values.chat;
  const outDir = values["out-dir"] ?? (demo ? "results/adl-demo" : "results/adl");
  const device = await resolveDevice(parseDevice(values.device!), console.log);
  const prompts = await sampledPromptsFromFlags(values, DEMO_PROMPTS, console.log);
  const { base, chat } = await pairOrDemo(values, console.log);
  const run = await runAdl({
    base,
    chat,
    prompts,
    layer: values.layer === undefined ? undefined : (layers) => layerFlag(values.layer!, layers),
    tokenTypes: values["token-types"] ? parseTokenTypes(values["token-types"]) : [],
    firstN: nonNegativeInt("first-n", values["first-n"], ADL_DEFAULTS.firstN),
    top: positiveInt("top", values.top, ADL_DEFAULTS.top),
    batchSize: positiveInt("batch-size", values["batch-size"], ADL_DEFAULTS.batchSize),
    maxLength: positiveInt("max-length", values["max-length"], ADL_DEFAULTS.maxLength),
    device,
    dtype: await graphDtype(device, parseDtype(values.dtype)),
    allowMismatch: values["allow-mismatch"],
    contrast: values["no-contrast"] ? false : values.contrast,
    rolePrompts: [...ROLE_PROMPTS],
    outDir,
    log: console.log,
  });
  for (const line of adlSummary(run, { chat, prompts: prompts.length, outDir })) console.log(line);
});
