/**
 * The steering results file, `{model_short}_layer{L}_steer.json`: prompt → magnitude → [responses],
 * loaded and extended by every run. Magnitude keys are normalised (`3`, never `3.0` beside it: the
 * notebook's float-vs-string duplicate), and a file that is not such a JSON is refused, never
 * overwritten.
 *
 * @module
 */

import { UserError } from "../core/errors.ts";
import { sha256Hex } from "../io/digest.ts";
import { writeJsonAtomic } from "../io/atomic.ts";
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

/** Loads a results file (empty when absent); merges duplicate magnitude keys like `3` and `3.0`. */
export async function loadSteerResults(path: string): Promise<SteerResults> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return {};
    throw error;
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new UserError(
      `${path} is not valid JSON (${(error as Error).message}); fix or move it away, it will not be overwritten`,
    );
  }
  const results: SteerResults = {};
  const shapeError = () =>
    new UserError(
      `${path} is not a steering results file (prompt -> magnitude -> [responses]); it will not be overwritten`,
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

/** Appends one response and writes the whole file atomically. */
export async function appendSteerResponse(
  path: string,
  results: SteerResults,
  prompt: string,
  magnitude: number | typeof BASELINE_KEY,
  response: string,
): Promise<void> {
  ((results[prompt] ??= {})[magnitudeKey(magnitude)] ??= []).push(response);
  await writeJsonAtomic(path, results);
}

/** Metadata of the `swapped_user_role.json` export. */
export interface SteerExportMetadata {
  modelName: string;
  modelType: string;
  layer: number;
  saeTrainer: string;
}

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

/**
 * Refuses to extend results made by another run setting: `settings` (model identity, vector digest,
 * intervention, generation options) is recorded in `{results}.run.json` beside the file and must
 * match on later runs. A results file without a record (the notebook's, say) is accepted as it is.
 */
export async function checkSteerRun(
  resultsPath: string,
  settings: Record<string, unknown>,
): Promise<() => Promise<void>> {
  const recordPath = `${resultsPath}.run.json`;
  const fingerprint = await sha256Hex([JSON.stringify(settings)]);
  const recorded = await Deno.readTextFile(recordPath).then(
    (t) => JSON.parse(t) as { fingerprint?: string },
    () => null,
  );
  if (recorded && recorded.fingerprint !== fingerprint) {
    throw new UserError(
      `${resultsPath} holds responses of another model, vector, intervention or generation setting: pass another --out-dir or move it away`,
    );
  }
  return () => writeJsonAtomic(recordPath, { fingerprint, settings });
}
