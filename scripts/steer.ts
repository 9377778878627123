/**
 * `deno task steer --mag -3,3`: generate with a vector added to (or otherwise applied to) the residual
 * stream after a layer, at each magnitude, for each prompt; results go to
 * `{model_short}_layer{L}_steer.json`, which later runs extend, and to the `swapped_user_role.json`
 * export. Each response streams to the terminal as it is generated.
 */

import { join } from "node:path";
import { renderNormal, steeringSuppressedIds, tokenizeRendered } from "../lib/runtime/chat.ts";
import { layerFlag, parseFlags, positiveInt } from "../lib/cli/flags.ts";
import { STEER } from "../lib/cli/commands.ts";
import { runMain } from "../lib/cli/main.ts";
import { UserError } from "../lib/core/errors.ts";
import { ensureFixtureModel } from "../lib/fixtures/build.ts";
import { ROLE_PROMPTS } from "../lib/fixtures/role_prompts.ts";
import { generate } from "../lib/runtime/generation.ts";
import { modelShortName, readModelShape, resolveModelDir } from "../lib/models/hub.ts";
import { modelIdentity } from "../lib/models/identity.ts";
import { sha256Hex } from "../lib/io/digest.ts";
import { ensureOutDir, writeJsonAtomic } from "../lib/io/atomic.ts";
import { readPromptFile } from "../lib/io/prompts.ts";
import { ProgressBar } from "../lib/io/progress.ts";
import {
  appendSteerResponse,
  BASELINE_KEY,
  checkSteerRun,
  loadSteerResults,
  magnitudeKey,
  parseMagnitudes,
  steerExport,
  steerResultsName,
} from "../lib/run/steer_results.ts";
import { computeContrastVectors } from "../lib/run/contrast.ts";
import { parseDevice, resolveDevice } from "../lib/backend/device.ts";
import { graphDtype, loadModel, parseDtype, transformers } from "../lib/runtime/runtime.ts";
import { parseInterventionKind, parsePositions } from "../lib/graph/steering.ts";
import { loadVector } from "../lib/io/vectors.ts";

function parseNumber(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n)) throw new UserError(`--${name} must be a number, got "${value}"`);
  return n;
}

await runMain(async () => {
  const { values } = parseFlags(Deno.args, STEER);
  const magnitudes: (number | typeof BASELINE_KEY)[] = parseMagnitudes(values.mag!);
  if (values.baseline) magnitudes.unshift(BASELINE_KEY);
  const device = await resolveDevice(parseDevice(values.device!), console.log);
  const dtype = await graphDtype(device, parseDtype(values.dtype));
  const kind = parseInterventionKind(values.kind!);
  const positions = parsePositions(values.positions!);
  const samples = positiveInt("samples", values.samples, 1);
  // The notebook's 300 new tokens for real models; the built-in fixture only needs enough to show
  // the effect, which keeps the demo to about a minute on a CPU-only machine.
  const maxNewTokens = positiveInt("max-new-tokens", values["max-new-tokens"], values.model ? 300 : 40);
  const temperature = parseNumber("temperature", values.temperature, 0.7);
  const repetitionPenalty = parseNumber("repetition-penalty", values["repetition-penalty"], 1.1);
  const seed = parseNumber("seed", values.seed, 0);

  const source = values.model ?? await ensureFixtureModel("tiny-gemma2-chat", console.log);
  const modelDir = await resolveModelDir(source, { dtype });
  const shape = await readModelShape(modelDir);
  const layer = values.layer === undefined ? Math.floor(shape.layers / 2) : layerFlag(values.layer, shape.layers);
  if (!Number.isInteger(layer) || layer < 0 || layer >= shape.layers) {
    throw new UserError(`layer ${values.layer} is out of range: this model has layers 0..${shape.layers - 1}`);
  }
  const short = values["model-short"] ?? modelShortName(source);
  const outDir = values["out-dir"] ?? join("results", short);
  await ensureOutDir(outDir);
  const vectorPath = values.vector ?? join(outDir, "contrast_vectors.safetensors");
  const prompts = values.prompts
    ? await readPromptFile(values.prompts, { skipBadRecords: values["skip-bad-records"], log: console.log })
    : [...ROLE_PROMPTS];
  if (!values.vector && !(await Deno.stat(vectorPath).then(() => true, () => false))) {
    // No vector yet: the sweep of just this layer is a few forward passes, far cheaper than stopping
    // and sending the user to sweep-layers; the file lands where sweep-layers would put it.
    // On the built-in model the sweep reads at the "assistant" token, where the fixture's plant
    // (lib/fixtures/plant.ts) puts a known assistant direction for the vector to find; real models
    // get sweep-layers' default, the last token.
    const position = values.model ? undefined : "asst" as const;
    console.log(
      `no contrast vector yet: computing it for layer ${layer} (role-swap sweep of that layer, read at the ${
        position ?? "last"
      } token) into ${vectorPath}`,
    );
    if (prompts.length < 2) throw new UserError("the role-swap sweep needs at least two prompts");
    await computeContrastVectors({
      source,
      layers: [layer],
      prompts,
      position,
      device,
      dtype,
      outDir,
      short,
      log: console.log,
      progress: (total) => new ProgressBar("sweep", total, "prompts"),
    });
  }
  const vector = await loadVector(vectorPath, { layer, dModel: shape.dModel, name: values["vector-name"] });
  const resultsPath = join(outDir, steerResultsName(short, layer, kind, positions));
  const results = await loadSteerResults(resultsPath); // refuses a corrupt file before any work
  const recordRun = await checkSteerRun(resultsPath, {
    model: (await modelIdentity(modelDir)).content,
    vector: await sha256Hex([new Uint8Array(vector.buffer, vector.byteOffset, vector.byteLength)]),
    layer,
    kind,
    positions,
    generation: values.greedy
      ? { greedy: true }
      : { temperature, repetitionPenalty, suppress: !values["no-suppress"], maxNewTokens },
  });

  const handle = await loadModel(source, {
    device,
    dtype,
    log: console.log,
    rewrite: { capture: [], cut: false, steering: [{ layer, kind, positions }] },
  });
  // The notebook suppresses "\n\n" and the end-of-turn token so every response runs its full length.
  const suppress = values["no-suppress"] ? null : steeringSuppressedIds(handle);
  const generation = values.greedy ? { do_sample: false } : {
    do_sample: true,
    temperature,
    repetition_penalty: repetitionPenalty,
    suppress_tokens: suppress,
  };
  transformers.random.seed(seed);

  const todo = prompts.flatMap((prompt) =>
    magnitudes.map((magnitude) => {
      const done = results[prompt]?.[magnitudeKey(magnitude)]?.length ?? 0;
      return { prompt, magnitude, count: values.resume ? Math.max(0, samples - done) : samples };
    })
  ).filter((job) => job.count > 0);
  const total = todo.reduce((n, job) => n + job.count, 0);
  await recordRun();
  const progress = new ProgressBar("steer", total, "responses");
  const encoder = new TextEncoder();
  for (const job of todo) {
    const ids = tokenizeRendered(handle, renderNormal(handle, job.prompt));
    for (let sample = 0; sample < job.count; sample++) {
      const magnitude = job.magnitude;
      const label = magnitude === BASELINE_KEY
        ? "baseline (no intervention)"
        : `${kind} ${magnitude >= 0 ? "+" : ""}${magnitude}`;
      console.log(`\n[${label} @ layer ${layer}] ${job.prompt}`);
      const tokens = await generate(handle, ids, {
        maxNewTokens,
        // A zero vector switches every kind off exactly (v̂ = 0 and c·v = 0 in the graph).
        steering: [
          magnitude === BASELINE_KEY
            ? { vector: new Float32Array(vector.length), scalar: 0 }
            : { vector, scalar: magnitude },
        ],
        generation,
        onText: (text) => Deno.stdout.writeSync(encoder.encode(text)),
      });
      console.log();
      const response = handle.tokenizer.decode(tokens, { skip_special_tokens: false });
      await appendSteerResponse(resultsPath, results, job.prompt, job.magnitude, response);
      progress.tick();
    }
  }
  progress.finish();
  const exportPath = join(outDir, "swapped_user_role.json");
  await writeJsonAtomic(
    exportPath,
    steerExport(results, {
      modelName: source,
      modelType: short,
      layer,
      saeTrainer: values["vector-name"] ?? "contrast",
    }),
  );
  console.log(`\n${total} response(s) generated; results in ${resultsPath}, export in ${exportPath}`);
  await handle.dispose();
});
