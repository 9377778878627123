/**
 * The steering results file on disk, `{model_short}_layer{L}_steer.json`: loaded and extended by every
 * run (the format itself, shared with the page, is lib/analysis/steer_results.ts); a file that is not
 * such a JSON is refused, never overwritten.
 *
 * @module
 */

import { UserError } from "../core/errors.ts";
import { writeJsonAtomic } from "../io/atomic.ts";
import {
  addSteerResponse,
  BASELINE_KEY,
  parseSteerResults,
  type SteerResults,
  steerRunRecord,
  type SteerRunSettings,
} from "../analysis/steer_results.ts";

export {
  BASELINE_KEY,
  magnitudeKey,
  parseMagnitudes,
  steerExport,
  type SteerExportMetadata,
  type SteerResults,
  steerResultsName,
} from "../analysis/steer_results.ts";

/** Loads a results file (empty when absent); merges duplicate magnitude keys like `3` and `3.0`. */
export async function loadSteerResults(path: string): Promise<SteerResults> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return {};
    throw error;
  }
  return parseSteerResults(text, path);
}

/** Appends one response and writes the whole file atomically. */
export async function appendSteerResponse(
  path: string,
  results: SteerResults,
  prompt: string,
  magnitude: number | typeof BASELINE_KEY,
  response: string,
): Promise<void> {
  addSteerResponse(results, prompt, magnitude, response);
  await writeJsonAtomic(path, results);
}

/**
 * Refuses to extend results made by another run setting: `settings` (model identity, vector digest,
 * intervention, generation options) is recorded in `{results}.run.json` beside the file and must
 * match on later runs. A results file without a record (the notebook's, say) is accepted as it is.
 */
export async function checkSteerRun(
  resultsPath: string,
  settings: SteerRunSettings,
): Promise<() => Promise<void>> {
  const recordPath = `${resultsPath}.run.json`;
  const record = await steerRunRecord(settings);
  const recorded = await Deno.readTextFile(recordPath).then(
    (t) => JSON.parse(t) as { fingerprint?: string },
    () => null,
  );
  if (recorded && recorded.fingerprint !== record.fingerprint) {
    throw new UserError(
      `${resultsPath} holds responses of another model, vector, intervention or generation setting: pass another --out-dir or move it away`,
    );
  }
  return () => writeJsonAtomic(recordPath, record);
}
