/**
 * `deno task generate`: greedy chat completion from any model (local directory or hub id), on
 * WebGPU or CPU. Without --model it runs the built-in demo on the generated tiny models.
 */

import { renderChat, tokenizeRendered } from "../lib/runtime/chat.ts";
import { parseFlags, positiveInt } from "../lib/cli/flags.ts";
import { GENERATE } from "../lib/cli/commands.ts";
import { runMain } from "../lib/cli/main.ts";
import { ensureFixtureModel } from "../lib/fixtures/build.ts";
import { generateGreedy } from "../lib/runtime/generation.ts";
import { parseDevice, resolveDevice } from "../lib/backend/device.ts";
import { loadModel, parseDtype } from "../lib/runtime/runtime.ts";

const DEMO_MODELS = ["tiny-llama-chat", "tiny-gemma2-chat"];

await runMain(async () => {
  const { values } = parseFlags(Deno.args, GENERATE);
  const device = await resolveDevice(parseDevice(values.device!), console.log);
  const maxNewTokens = positiveInt("max-new-tokens", values["max-new-tokens"], 20);
  const sources = values.model
    ? [values.model]
    : await Promise.all(DEMO_MODELS.map((name) => ensureFixtureModel(name, console.log)));
  for (const source of sources) {
    const handle = await loadModel(source, { device, dtype: parseDtype(values.dtype), log: console.log });
    const text = renderChat(handle, [{ role: "user", content: values.prompt! }]);
    const promptIds = tokenizeRendered(handle, text);
    const started = performance.now();
    const ids = await generateGreedy(handle, promptIds, maxNewTokens);
    const seconds = (performance.now() - started) / 1000;
    console.log(`\n${source} (${handle.config.model_type}, ${device}): ${promptIds.length} prompt tokens`);
    console.log(`prompt: ${JSON.stringify(text)}`);
    console.log(`generated ${ids.length} tokens in ${seconds.toFixed(2)} s: ${ids.join(" ")}`);
    console.log(`text: ${JSON.stringify(handle.tokenizer.decode(ids))}`);
    await handle.dispose();
  }
});
