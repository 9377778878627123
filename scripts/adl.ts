/**
 * `deno task adl`: the activation-difference lens. The mean difference of the chat and base models'
 * residuals after a layer, per read position, read through the chat model's final norm and
 * unembedding (top promoted and suppressed tokens), compared with the role-swap contrast vector of
 * every layer, and saved as steering vectors for `deno task steer --vector`.
 *
 * Its own task rather than `diff --adl`: it needs no SAE, statistics, shards or checkpoints, and its
 * flags (--first-n, --contrast) mean nothing to the diff.
 */

import { join } from "node:path";
import {
  activationDifferences,
  contrastCosines,
  type ContrastVectors,
  lensLogits,
  lensTopTokens,
  loadContrastVectors,
  loadUnembedding,
} from "../lib/analysis/adl.ts";
import { parseTokenTypes } from "../lib/runtime/chat.ts";
import { layerFlag, nonNegativeInt, parseFlags, positiveInt, seedFlag } from "../lib/cli/flags.ts";
import { ADL } from "../lib/cli/commands.ts";
import { runMain } from "../lib/cli/main.ts";
import { UserError } from "../lib/core/errors.ts";
import { ensureFixtureModel } from "../lib/fixtures/build.ts";
import { DEMO_PROMPTS } from "../lib/fixtures/prompts.ts";
import { ROLE_PROMPTS } from "../lib/fixtures/role_prompts.ts";
import { acquireGpu } from "../lib/backend/gpu.ts";
import { modelShortName, readModelShape, resolveModelDir } from "../lib/models/hub.ts";
import { ensureOutDir } from "../lib/io/atomic.ts";
import { readPromptFile, samplePrompts } from "../lib/io/prompts.ts";
import { ProgressBar } from "../lib/io/progress.ts";
import { adlTensorName, writeAdlOutputs } from "../lib/report/adl.ts";
import { computeContrastVectors } from "../lib/run/contrast.ts";
import { parseDevice, resolveDevice } from "../lib/backend/device.ts";
import { graphDtype, loadTokenizer, parseDtype } from "../lib/runtime/runtime.ts";
import { dirOutput } from "../lib/io/dir_output.ts";

await runMain(async () => {
  const { values } = parseFlags(Deno.args, ADL);
  const demo = !values.base && !values.chat;
  const outDir = values["out-dir"] ?? (demo ? "results/adl-demo" : "results/adl");
  const device = await resolveDevice(parseDevice(values.device!), console.log);
  const dtype = await graphDtype(device, parseDtype(values.dtype));
  const top = positiveInt("top", values.top, 20);
  const all = values.prompts
    ? await readPromptFile(values.prompts, { skipBadRecords: values["skip-bad-records"], log: console.log })
    : [...DEMO_PROMPTS];
  const prompts = samplePrompts(
    all,
    values.n === undefined ? undefined : positiveInt("n", values.n, 1),
    seedFlag(values.seed, 42),
  );
  const base = values.base ?? await ensureFixtureModel("tiny-llama-base", console.log);
  const chat = values.chat ?? await ensureFixtureModel("tiny-llama-chat", console.log);
  const chatDir = await resolveModelDir(chat, { dtype });
  const shape = await readModelShape(chatDir);
  const layer = values.layer === undefined ? Math.floor(shape.layers / 2) : layerFlag(values.layer, shape.layers);
  if (!Number.isInteger(layer) || layer < 0 || layer >= shape.layers) {
    throw new UserError(`layer ${values.layer} is out of range: this model has layers 0..${shape.layers - 1}`);
  }
  await ensureOutDir(outDir);

  const differences = await activationDifferences({
    base,
    chat,
    prompts,
    layer,
    tokenTypes: values["token-types"] ? parseTokenTypes(values["token-types"]) : [],
    firstN: nonNegativeInt("first-n", values["first-n"], 5),
    batchSize: positiveInt("batch-size", values["batch-size"], 8),
    maxLength: positiveInt("max-length", values["max-length"], 512),
    device,
    dtype,
    allowMismatch: values["allow-mismatch"],
    log: console.log,
    progress: (total) => new ProgressBar("residuals", total, "prompts"),
  });
  const lens = await lensLogits(await loadUnembedding(differences.chatDir), differences.mean);
  const tops = lens.map((logits) => lensTopTokens(logits, top));

  let contrast: ContrastVectors | undefined;
  let cosines: Float32Array | undefined;
  if (!values["no-contrast"]) {
    const short = modelShortName(chat);
    const path = values.contrast ?? join("results", short, "contrast_vectors.safetensors");
    if (!values.contrast && !(await Deno.stat(path).then(() => true, () => false))) {
      console.log(`no contrast vectors yet: running the role-swap sweep of every layer of ${chat} into ${path}`);
      await computeContrastVectors({
        source: chat,
        layers: Array.from({ length: shape.layers }, (_, l) => l),
        prompts: [...ROLE_PROMPTS],
        device,
        dtype,
        outDir: join("results", short),
        short,
        log: console.log,
        progress: (total) => new ProgressBar("sweep", total, "prompts"),
      });
    }
    contrast = await loadContrastVectors(path);
    cosines = await contrastCosines(await acquireGpu(), differences.mean, contrast);
  }
  const { tokenizer } = await loadTokenizer(chatDir);
  const decode = (ids: number[]) => tokenizer.decode(ids, { skip_special_tokens: false });
  const files = await writeAdlOutputs(dirOutput(outDir), {
    differences,
    top: tops,
    contrast,
    cosines,
    decode,
    info: { base, chat, prompts: prompts.length },
  });

  console.log(`\nactivation-difference lens at layer ${layer} (${prompts.length} prompts):`);
  differences.keys.forEach((key, k) => {
    const words = (list: { tokenId: number }[]) => list.slice(0, 5).map((t) => JSON.stringify(decode([t.tokenId])));
    console.log(`  ${key.padEnd(10)} promoted ${words(tops[k].promoted).join(" ")}`);
    console.log(`  ${"".padEnd(10)} suppressed ${words(tops[k].suppressed).join(" ")}`);
    if (contrast && cosines) {
      const row = contrast.layers.map((l, j) => `${l}:${cosines[k * contrast.layers.length + j].toFixed(2)}`);
      console.log(`  ${"".padEnd(10)} cosine with contrast (read at ${contrast.readPosition}) ${row.join(" ")}`);
    }
  });
  console.log(`\nresults in ${outDir}: ${files.join(", ")}`);
  const first = differences.keys[0];
  console.log(
    `steer with it: deno task steer --model ${chat} --layer ${layer} --vector ${
      join(outDir, "adl_vectors.safetensors")
    } --vector-name ${adlTensorName(first)}`,
  );
});
