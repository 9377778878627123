/**
 * The steering results format, platform-neutral: `{model_short}_layer{L}_steer.json` (prompt →
 * magnitude → [responses]), parsed, extended and named the same way by `deno task steer`
 * (lib/run/steer_results.ts keeps it on disk) and the page (which offers it as a download the CLI
 * extends). Magnitude keys are normalised (`3`, never `3.0` beside it: the notebook's float-vs-string
 * duplicate), and a text that is not such a JSON is refused.
 *
 * @module
 */

import { UserError } from "../core/errors.ts";
import { sha256Hex } from "../core/sha256.ts";
import type { InterventionKind, SteeringPositions } from "../graph/steering.ts";

/** prompt → magnitude key → responses. */
export type SteerResults = Record<string, Record<string, string[]>>;

/**
 * The key of responses generated with the intervention switched off (for every kind; magnitude 0 is a
 * no-op only for `addition`).
 */
export const BASELINE_KEY = "baseline";

/** The canonical key of a magnitude: JavaScript's shortest round-trip form (`3`, `-0.5`, `0`). */
export function magnitudeKey(magnitude: number | string): string {
  if (magnitude === BASELINE_KEY) return BASELINE_KEY;
  const value = typeof magnitude === "number" ? magnitude : Number(magnitude);
  if (!Number.isFinite(value) || (typeof magnitude === "string" && magnitude.trim() === "")) {
    throw new UserError(`bad magnitude "${magnitude}"`);
  }
  return String(value === 0 ? 0 : value);
}

/** Parses `--mag` such as `-3,3` or `-2,0,2.5`. */
export function parseMagnitudes(value: string): number[] {
  const parts = value.split(",").map((s) => s.trim());
  if (!parts.length || parts.some((p) => !/^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$/.test(p))) {
    throw new UserError(`bad --mag value "${value}": give numbers separated by commas, e.g. --mag -3,3`);
  }
  return [...new Set(parts.map(Number))];
}

/** A results file's text (`label` names it in errors) as results; merges duplicate keys like `3` and `3.0`. */
export function parseSteerResults(text: string, label: string): SteerResults {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new UserError(
      `${label} is not valid JSON (${(error as Error).message}); fix or move it away, it will not be overwritten`,
    );
  }
  const results: SteerResults = {};
  const shapeError = () =>
    new UserError(
      `${label} is not a steering results file (prompt -> magnitude -> [responses]); it will not be overwritten`,
    );
  if (!data || typeof data !== "object" || Array.isArray(data)) throw shapeError();
  for (const [prompt, byMagnitude] of Object.entries(data as Record<string, unknown>)) {
    if (!byMagnitude || typeof byMagnitude !== "object" || Array.isArray(byMagnitude)) throw shapeError();
    results[prompt] = {};
    for (const [magnitude, responses] of Object.entries(byMagnitude as Record<string, unknown>)) {
      if (!Array.isArray(responses) || responses.some((r) => typeof r !== "string")) throw shapeError();
      let key: string;
      try {
        key = magnitudeKey(magnitude);
      } catch {
        throw shapeError();
      }
      (results[prompt][key] ??= []).push(...(responses as string[]));
    }
  }
  return results;
}

/** Adds one response to `results` (in place). */
export function addSteerResponse(
  results: SteerResults,
  prompt: string,
  magnitude: number | typeof BASELINE_KEY,
  response: string,
): void {
  ((results[prompt] ??= {})[magnitudeKey(magnitude)] ??= []).push(response);
}

/** A JSON file's text as the toolkit writes every JSON it keeps (lib/io/atomic.ts writeJsonAtomic). */
export function jsonText(value: unknown): string {
  return JSON.stringify(value, null, 2) + "\n";
}

/** Metadata of the `swapped_user_role.json` export. */
export interface SteerExportMetadata {
  modelName: string;
  modelType: string;
  layer: number;
  saeTrainer: string;
}

/** The name of the notebook's export. */
export const STEER_EXPORT_FILE = "swapped_user_role.json";

/** The notebook's export: feature_id -1, group names, metadata, results {prompt: {steering: {mag: [...]}}}. */
export function steerExport(results: SteerResults, metadata: SteerExportMetadata): Record<string, unknown> {
  return {
    feature_id: -1,
    group_name: "swapped_user_role",
    readable_group_name: "Swapped User Role Contrast Vector",
    description:
      "This is a contrast vector found from swapping the user role with the model role in the chat prompt format.",
    metadata: {
      model_name: metadata.modelName,
      model_type: metadata.modelType,
      sae_layer: metadata.layer,
      sae_trainer: metadata.saeTrainer,
    },
    results: Object.fromEntries(
      Object.entries(results).map(([prompt, byMagnitude]) => [prompt, { steering: byMagnitude }]),
    ),
  };
}

/**
 * The results file of one intervention: the notebook's `{model_short}_layer{L}_steer.json` for
 * `addition` at all positions, the kind (and `last`) in the name otherwise, so that different
 * interventions never land under the same magnitude keys.
 */
export function steerResultsName(short: string, layer: number, kind: InterventionKind, positions: SteeringPositions) {
  const variant = kind === "addition" && positions === "all" ? "" : `_${kind}${positions === "last" ? "_last" : ""}`;
  return `${short}_layer${layer}${variant}_steer.json`;
}

/** What a steering run is recorded by: the model, vector, intervention and generation settings. */
export interface SteerRunSettings {
  /** The model's content identity (lib/models/identity.ts, lib/models/built_model.ts). */
  model: string;
  /** SHA-256 of the vector's f32 bytes. */
  vector: string;
  layer: number;
  kind: InterventionKind;
  positions: SteeringPositions;
  generation:
    | { greedy: true }
    | { temperature: number; repetitionPenalty: number; suppress: boolean; maxNewTokens: number };
}

/** The record `{results}.run.json` holds: the settings and their fingerprint. */
export async function steerRunRecord(
  settings: SteerRunSettings,
): Promise<{ fingerprint: string; settings: SteerRunSettings }> {
  return { fingerprint: await sha256Hex([JSON.stringify(settings)]), settings };
}

/** SHA-256 of a vector's f32 bytes (its key in the run record). */
export function vectorDigest(vector: Float32Array): Promise<string> {
  return sha256Hex([new Uint8Array(vector.buffer, vector.byteOffset, vector.byteLength)]);
}
