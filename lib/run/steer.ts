/**
 * A steering run: the vector (computed by the role-swap sweep of the layer when there is none yet),
 * the results file it extends (checked against the run's model, vector, layer and settings), then one
 * generation per prompt, magnitude and sample, each appended as it finishes, and the notebook's export.
 *
 * @module
 */

import { join } from "node:path";
import { UserError } from "../core/errors.ts";
import type { InterventionKind, SteeringPositions } from "../graph/steering.ts";
import { ensureOutDir, writeJsonAtomic } from "../io/atomic.ts";
import { ProgressBar, promptBars } from "../io/progress.ts";
import { loadVector } from "../io/vectors.ts";
import { modelShortName, readModelShape, resolveModelDir } from "../models/hub.ts";
import { modelIdentity } from "../models/identity.ts";
import type { Device, GraphDtype } from "../runtime/runtime.ts";
import { loadModel } from "../runtime/runtime.ts";
import {
  steerGenerate,
  steeringRewrite,
  type SteerJob,
  steerLayer,
  steerRunSettings,
  type SteerSampling,
} from "../analysis/steer.ts";
import { STEER_EXPORT_FILE } from "../analysis/steer_results.ts";
import { computeContrastVectors } from "./contrast.ts";
import {
  appendSteerResponse,
  BASELINE_KEY,
  checkSteerRun,
  loadSteerResults,
  magnitudeKey,
  steerExport,
  steerResultsName,
} from "./steer_results.ts";

/** What {@linkcode runSteer} does. */
export interface SteerOptions {
  source: string;
  /** The layer whose output is steered (default: the middle one). */
  layer?: (layers: number) => number;
  device: Device;
  dtype: GraphDtype;
  kind: InterventionKind;
  positions: SteeringPositions;
  magnitudes: (number | typeof BASELINE_KEY)[];
  prompts: string[];
  samples: number;
  resume: boolean;
  maxNewTokens: number;
  /** Sampling settings, or greedy decoding. */
  sampling: SteerSampling;
  seed: number;
  /** The vector file (default: the contrast vectors in `outDir`, computed when missing). */
  vector?: string;
  vectorName?: string;
  /** Where the role-swap sweep reads when it computes the vector (default: the last token). */
  sweepPosition?: "asst";
  short?: string;
  outDir?: string;
  log: (line: string) => void;
  /** Each generated piece of text, as it comes. */
  onText: (text: string) => void;
}

/** Where a steering run wrote, and how many responses it generated. */
export interface SteerRun {
  resultsPath: string;
  exportPath: string;
  generated: number;
}

/** Runs the steering the options describe. */
export async function runSteer(options: SteerOptions): Promise<SteerRun> {
  const { source, device, dtype, kind, positions, magnitudes, prompts, log } = options;
  const modelDir = await resolveModelDir(source, { dtype });
  const shape = await readModelShape(modelDir);
  const layer = steerLayer(options.layer?.(shape.layers), shape.layers);
  const short = options.short ?? modelShortName(source);
  const outDir = options.outDir ?? join("results", short);
  await ensureOutDir(outDir);
  const vectorPath = options.vector ?? join(outDir, "contrast_vectors.safetensors");
  if (!options.vector && !(await Deno.stat(vectorPath).then(() => true, () => false))) {
    // No vector yet: the sweep of just this layer is a few forward passes, far cheaper than stopping
    // and sending the user to sweep-layers; the file lands where sweep-layers would put it.
    const position = options.sweepPosition;
    log(
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
      log,
      progress: promptBars,
    });
  }
  const vector = await loadVector(vectorPath, { layer, dModel: shape.dModel, name: options.vectorName });
  const resultsPath = join(outDir, steerResultsName(short, layer, kind, positions));
  const results = await loadSteerResults(resultsPath); // refuses a corrupt file before any work
  const recordRun = await checkSteerRun(
    resultsPath,
    await steerRunSettings({
      modelIdentity: (await modelIdentity(modelDir)).content,
      vector,
      layer,
      kind,
      positions,
      sampling: options.sampling,
      maxNewTokens: options.maxNewTokens,
    }),
  );

  const handle = await loadModel(source, { device, dtype, log, rewrite: steeringRewrite(layer, kind, positions) });
  try {
    const todo: SteerJob[] = prompts.flatMap((prompt) =>
      magnitudes.map((magnitude) => {
        const done = results[prompt]?.[magnitudeKey(magnitude)]?.length ?? 0;
        return { prompt, magnitude, count: options.resume ? Math.max(0, options.samples - done) : options.samples };
      })
    ).filter((job) => job.count > 0);
    const total = todo.reduce((n, job) => n + job.count, 0);
    await recordRun();
    const progress = new ProgressBar("steer", total, "responses");
    await steerGenerate(handle, todo, {
      vector,
      layer,
      kind,
      maxNewTokens: options.maxNewTokens,
      sampling: options.sampling,
      seed: options.seed,
      log,
      onText: (text) => options.onText(text),
      onResponse: async (job, response) => {
        await appendSteerResponse(resultsPath, results, job.prompt, job.magnitude, response);
        progress.tick();
      },
    });
    progress.finish();
    const exportPath = join(outDir, STEER_EXPORT_FILE);
    await writeJsonAtomic(
      exportPath,
      steerExport(results, {
        modelName: source,
        modelType: short,
        layer,
        saeTrainer: options.vectorName ?? "contrast",
      }),
    );
    return { resultsPath, exportPath, generated: total };
  } finally {
    await handle.dispose();
  }
}
