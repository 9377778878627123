/**
 * `deno task crosscoder`: model diffing with a base-vs-chat crosscoder. Runs both models on the same
 * chat-formatted token ids, encodes the paired residuals at the read positions with the crosscoder,
 * and writes `crosscoder_latents.csv` (per latent: decoder norms, relative norm, Δnorm, cosine, tag,
 * activation statistics per token type) and `crosscoder.html` (relative norms stacked by tag).
 * Without --base/--chat/--crosscoder it runs on the built-in tiny Llama pair and fixture crosscoder.
 */

import { join } from "node:path";
import { parseTokenTypes } from "../lib/runtime/chat.ts";
import { layerFlag, parseFlags, positiveInt } from "../lib/cli/flags.ts";
import { CROSSCODER } from "../lib/cli/commands.ts";
import { LATENT_TAGS, tagCounts } from "../lib/analysis/crosscoder/analysis.ts";
import { runCrosscoder } from "../lib/analysis/crosscoder/run.ts";
import { runMain } from "../lib/cli/main.ts";
import { UserError } from "../lib/core/errors.ts";
import { ensureFixtureCrosscoder, pairOrDemo } from "../lib/fixtures/build.ts";
import { DEMO_PROMPTS } from "../lib/fixtures/prompts.ts";
import { ensureOutDir } from "../lib/io/atomic.ts";
import { sampledPromptsFromFlags } from "../lib/cli/prompts.ts";
import { promptBars } from "../lib/io/progress.ts";
import { writeCrosscoderOutputs } from "../lib/report/crosscoder.ts";
import { parseDevice, resolveDevice } from "../lib/backend/device.ts";
import { parseDtype } from "../lib/runtime/runtime.ts";
import { dirOutput } from "../lib/io/dir_output.ts";
import { modelDisplayName } from "../lib/report/plotly.ts";

function parseInputScale(value: string | undefined): [number, number] | undefined {
  if (value === undefined) return undefined;
  const parts = value.split(",").map(Number);
  if (parts.length !== 2 || !parts.every((x) => Number.isFinite(x) && x > 0)) {
    throw new UserError(`--input-scale takes two positive numbers base,chat, got "${value}"`);
  }
  return [parts[0], parts[1]];
}

await runMain(async () => {
  const { values } = parseFlags(Deno.args, CROSSCODER);
  const given = [values.base, values.chat, values.crosscoder].filter((v) => v !== undefined).length;
  if (given !== 0 && given !== 3) {
    throw new UserError("--base, --chat and --crosscoder go together: pass all three, or none for the demo");
  }
  const demo = given === 0;
  const outDir = values["out-dir"] ?? (demo ? "results/crosscoder-demo" : "results/crosscoder");
  const tokenTypes = parseTokenTypes(values["token-types"]!);
  const inputScale = parseInputScale(values["input-scale"]);
  const prompts = await sampledPromptsFromFlags(values, DEMO_PROMPTS, console.log);
  const layer = values.layer === undefined ? undefined : layerFlag(values.layer);
  if (layer !== undefined && (!Number.isInteger(layer) || layer < 0)) {
    throw new UserError(`--layer must be a non-negative integer, got "${values.layer}"`);
  }
  await ensureOutDir(outDir);
  const { base, chat } = await pairOrDemo(values, console.log);
  const crosscoder = values.crosscoder ?? await ensureFixtureCrosscoder("tiny-llama-crosscoder-L2-k4", console.log);
  const run = await runCrosscoder({
    base,
    chat,
    crosscoder,
    prompts,
    layer,
    tokenTypes,
    batchSize: positiveInt("batch-size", values["batch-size"], 8),
    maxLength: positiveInt("max-length", values["max-length"], 512),
    device: await resolveDevice(parseDevice(values.device!), console.log),
    dtype: parseDtype(values.dtype),
    inputScale,
    allowMismatch: values["allow-mismatch"],
    log: console.log,
    progress: promptBars,
  });
  const written = await writeCrosscoderOutputs(dirOutput(outDir), run, {
    title: `${modelDisplayName(base)} → ${modelDisplayName(chat)}`,
    models: { base, chat },
  });
  const { config } = run.crosscoder;
  const counts = tagCounts(run.decoder.tags);
  console.log(
    `\n${config.dict} latents of a ${config.layout} ${config.architecture} crosscoder at layer ${run.layer}, ` +
      `${run.prompts} prompts${
        run.fallbacks ? ` (${run.fallbacks} without an assistant header: read at the end)` : ""
      }`,
  );
  console.log(`  ${LATENT_TAGS.map((tag) => `${tag} ${counts[tag]}`).join(", ")}`);
  console.log(`\nresults in ${outDir}: ${written.files.join(", ")}`);
  console.log(`report: ${join(outDir, "crosscoder.html")} (open it in a browser)`);
});
