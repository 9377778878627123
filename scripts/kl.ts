/**
 * `deno task kl`: where the chat model's predictions differ from the base model's. Runs both full
 * models on the same chat-formatted prompts, computes KL(chat ‖ base) of the next-token distribution
 * at every token on the GPU, and writes `kl_tokens.csv`, `kl_summary.csv` (mean and median per token
 * type and per position), `kl_top.csv` (the highest-KL tokens with context) and `kl.html`.
 */

import { join } from "node:path";
import { parseTokenTypes } from "../lib/runtime/chat.ts";
import { parseFlags, positiveInt } from "../lib/cli/flags.ts";
import { KL } from "../lib/cli/commands.ts";
import { runMain } from "../lib/cli/main.ts";
import { pairOrDemo } from "../lib/fixtures/build.ts";
import { DEMO_PROMPTS } from "../lib/fixtures/prompts.ts";
import { ensureOutDir } from "../lib/io/atomic.ts";
import { sampledPromptsFromFlags } from "../lib/cli/prompts.ts";
import { runKl } from "../lib/run/kl.ts";
import { promptBars } from "../lib/io/progress.ts";
import { writeKlOutputs } from "../lib/report/kl.ts";
import { parseDevice, resolveDevice } from "../lib/backend/device.ts";
import { parseDtype } from "../lib/runtime/runtime.ts";
import { dirOutput } from "../lib/io/dir_output.ts";
import { modelDisplayName } from "../lib/report/plotly.ts";

await runMain(async () => {
  const { values } = parseFlags(Deno.args, KL);
  const demo = !values.base && !values.chat;
  const outDir = values["out-dir"] ?? (demo ? "results/kl-demo" : "results/kl");
  const tokenTypes = parseTokenTypes(values["token-types"]!);
  const top = positiveInt("top", values.top, 100);
  const prompts = await sampledPromptsFromFlags(values, DEMO_PROMPTS, console.log);
  await ensureOutDir(outDir);
  const { base, chat } = await pairOrDemo(values, console.log);
  const run = await runKl({
    base,
    chat,
    prompts,
    tokenTypes,
    batchSize: positiveInt("batch-size", values["batch-size"], 4),
    maxLength: positiveInt("max-length", values["max-length"], 512),
    device: await resolveDevice(parseDevice(values.device!), console.log),
    dtype: parseDtype(values.dtype),
    allowMismatch: values["allow-mismatch"],
    log: console.log,
    progress: promptBars,
  });
  const written = await writeKlOutputs(dirOutput(outDir), run, {
    title: `${modelDisplayName(base)} → ${modelDisplayName(chat)}`,
    models: { base, chat },
    tokenTypes,
    top,
  });
  console.log(`\nKL(chat ‖ base) over ${run.tokens.length} tokens of ${run.prompts.length} prompts (nats):`);
  for (const g of written.groups.filter((g) => g.by === "token_type")) {
    console.log(`  ${g.key.padEnd(10)} mean ${g.mean.toFixed(5)}  median ${g.median.toFixed(5)}  (${g.count} tokens)`);
  }
  console.log("highest:");
  for (const r of written.top.slice(0, 5)) {
    console.log(
      `  ${r.token.kl.toFixed(4)}  prompt ${r.token.prompt} position ${r.token.position} ${
        JSON.stringify(r.text)
      } (chat predicts ${JSON.stringify(r.chatTop)}, base ${JSON.stringify(r.baseTop)})`,
    );
  }
  console.log(`\nresults in ${outDir}: ${written.files.join(", ")}`);
  console.log(`report: ${join(outDir, "kl.html")} (open it in a browser)`);
});
