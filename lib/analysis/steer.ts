/**
 * Steered generation on a loaded model, platform-neutral: the rewrite that puts the intervention
 * after a layer, the layer's default and range, the run record's settings, and the loop that generates
 * each prompt's responses at each magnitude with the vector fed to the graph. `deno task steer`
 * (lib/run/steer.ts: files, resume, progress bar) and the page's steering panel (web/engine/steer.ts)
 * both run it, so the same model, vector and settings give the same generations on either side.
 *
 * @module
 */

import { UserError } from "../core/errors.ts";
import type { InterventionKind, SteeringPositions } from "../graph/steering.ts";
import type { RewriteSpec } from "../graph/rewrite.ts";
import type { ModelHandle } from "../runtime/runtime.ts";
import { renderNormal, steeringSuppressedIds, tokenizeRendered } from "../runtime/chat.ts";
import { generate } from "../runtime/generation.ts";
import { BASELINE_KEY, type SteerRunSettings, vectorDigest } from "./steer_results.ts";

/** Sampling settings, or greedy decoding. */
export type SteerSampling =
  | { greedy: true }
  | { temperature: number; repetitionPenalty: number; suppress: boolean };

/** The layer steered after: `requested`, else the middle one; out of range is a UserError. */
export function steerLayer(requested: number | undefined, layers: number): number {
  const layer = requested ?? Math.floor(layers / 2);
  if (!Number.isInteger(layer) || layer < 0 || layer >= layers) {
    throw new UserError(`layer ${layer} is out of range: this model has layers 0..${layers - 1}`);
  }
  return layer;
}

/** The graph rewrite of a steering run: one intervention site after `layer`, nothing captured. */
export function steeringRewrite(layer: number, kind: InterventionKind, positions: SteeringPositions): RewriteSpec {
  return { capture: [], cut: false, steering: [{ layer, kind, positions }] };
}

/** The settings a run's results are recorded under (`{results}.run.json`). */
export async function steerRunSettings(options: {
  modelIdentity: string;
  vector: Float32Array;
  layer: number;
  kind: InterventionKind;
  positions: SteeringPositions;
  sampling: SteerSampling;
  maxNewTokens: number;
}): Promise<SteerRunSettings> {
  const { sampling } = options;
  return {
    model: options.modelIdentity,
    vector: await vectorDigest(options.vector),
    layer: options.layer,
    kind: options.kind,
    positions: options.positions,
    generation: "greedy" in sampling ? { greedy: true } : {
      temperature: sampling.temperature,
      repetitionPenalty: sampling.repetitionPenalty,
      suppress: sampling.suppress,
      maxNewTokens: options.maxNewTokens,
    },
  };
}

/** Responses to generate: `count` of `prompt` at `magnitude`. */
export interface SteerJob {
  prompt: string;
  magnitude: number | typeof BASELINE_KEY;
  count: number;
}

/** What {@linkcode steerGenerate} generates with. */
export interface SteerGenerateOptions {
  vector: Float32Array;
  layer: number;
  kind: InterventionKind;
  maxNewTokens: number;
  sampling: SteerSampling;
  /** Seeds transformers.js's sampler once, before the first response. */
  seed: number;
  /** The line naming each response before it streams, and the end of the response. */
  log: (line: string) => void;
  /** Each generated piece of text, as it comes, with the job it belongs to. */
  onText?: (text: string, job: SteerJob) => void;
  /** Each response, once complete (awaited before the next starts). */
  onResponse: (job: SteerJob, response: string) => void | Promise<void>;
  /** Checked between responses: aborted stops the run. */
  signal?: AbortSignal;
}

/**
 * Generates the jobs' responses on `handle` (loaded with {@linkcode steeringRewrite} of the layer and
 * kind): each prompt in the chat model's normal format, the vector fed at every step at the job's
 * magnitude (the baseline feeds a zero vector, which switches every kind off exactly).
 */
export async function steerGenerate(
  handle: ModelHandle,
  jobs: readonly SteerJob[],
  options: SteerGenerateOptions,
): Promise<void> {
  const { sampling, vector, kind, layer, log } = options;
  // The notebook suppresses "\n\n" and the end-of-turn token so every response runs its full length.
  const generation = "greedy" in sampling ? { do_sample: false } : {
    do_sample: true,
    temperature: sampling.temperature,
    repetition_penalty: sampling.repetitionPenalty,
    suppress_tokens: sampling.suppress ? steeringSuppressedIds(handle) : null,
  };
  handle.transformers.random.seed(options.seed);
  for (const job of jobs) {
    const ids = tokenizeRendered(handle, renderNormal(handle, job.prompt));
    for (let sample = 0; sample < job.count; sample++) {
      options.signal?.throwIfAborted();
      const magnitude = job.magnitude;
      const label = magnitude === BASELINE_KEY
        ? "baseline (no intervention)"
        : `${kind} ${magnitude >= 0 ? "+" : ""}${magnitude}`;
      log(`\n[${label} @ layer ${layer}] ${job.prompt}`);
      const tokens = await generate(handle, ids, {
        maxNewTokens: options.maxNewTokens,
        steering: [
          magnitude === BASELINE_KEY
            ? { vector: new Float32Array(vector.length), scalar: 0 }
            : { vector, scalar: magnitude },
        ],
        generation,
        onText: options.onText && ((text) => options.onText!(text, job)),
      });
      log("");
      await options.onResponse(job, handle.tokenizer.decode(tokens, { skip_special_tokens: false }));
    }
  }
}
