/**
 * The feature dashboards of a diff run on disk (`features.html`): the run's models and SAE resolved and
 * checked to be the collected ones, then lib/report/dashboard_data.ts's cards, with Neuronpedia
 * explanations (cached), written into the run's directory.
 *
 * @module
 */

import { loadForCapture } from "../runtime/runtime.ts";
import { DIFF_MODELS, type DiffModel, type readRunStats } from "./stats_files.ts";
import type { Device } from "../backend/device.ts";
import type { DiffMetric, DiffRow } from "../features/diff.ts";
import { UserError } from "../core/errors.ts";
import { readModelShape, resolveModelDir } from "../models/hub.ts";
import { modelIdentity } from "../models/identity.ts";
import { saeIdentity } from "../sae/identity.ts";
import type { Explanation } from "../features/neuronpedia.ts";
import { type ExplanationOptions, ExplanationSource } from "../features/neuronpedia_api.ts";
import { writeDashboardPage } from "../report/dashboards.ts";
import { dashboardData, featureSubset, tokenActivations } from "../report/dashboard_data.ts";
import { dirOutput } from "../io/dir_output.ts";
import { loadTokenizer } from "../runtime/runtime.ts";
import { createEncoder } from "../encoders/encoder.ts";
import { loadSae } from "../sae/load.ts";
import { readRunPrompts } from "./run_prompts.ts";

export { chooseCards, featureSubset } from "../report/dashboard_data.ts";

type StatsFile = Awaited<ReturnType<typeof readRunStats>>;

/** Options of {@linkcode writeDashboards}. */
export interface DashboardOptions {
  outDir: string;
  title: string;
  tables: Record<DiffMetric, DiffRow[]>;
  /** Both models' statistics files, with their top examples. */
  files: { base: StatsFile; chat: StatsFile };
  /** Cards for the first this many rows per read position of each table. */
  cards: number;
  /** Where the prompts are run again and encoded. */
  device: Device;
  explanations?: ExplanationOptions;
  log?: (line: string) => void;
}

/** Refuses a model or SAE that is no longer the one the statistics were collected with, in one line. */
function checkIdentity(what: string, now: string, then: unknown): void {
  if (now !== then) {
    throw new UserError(
      `${what} is not the one the statistics were collected with (it changed since): the dashboards would not match them; collect again, or pass --cards 0`,
    );
  }
}

/**
 * Writes `features.html` in `outDir`: a card for each feature of the tables' first rows. Refuses in
 * one line when the run's prompts, models or SAE are not the collected ones any more.
 */
export async function writeDashboards(options: DashboardOptions): Promise<{ path: string; cards: number }> {
  const { files, outDir, log } = options;
  const meta = files.chat.metadata;
  if (!files.base.examples || !files.chat.examples) {
    throw new UserError(`the statistics in ${outDir} hold no top examples`);
  }
  const { sae_layer: layer, dtype, batch_size: batchSize } = meta;
  const prompts = await readRunPrompts(
    outDir,
    meta.prompts_digest,
    "the dashboards need them (collect again, or pass --cards 0)",
  );
  const dirs = {} as Record<DiffModel, string>;
  for (const model of DIFF_MODELS) {
    const source = files[model].metadata.model;
    dirs[model] = await resolveModelDir(source, { dtype });
    checkIdentity(
      `the ${model} model ${source}`,
      (await modelIdentity(dirs[model])).content,
      files[model].metadata.model_identity,
    );
  }
  const sae = await loadSae(meta.sae, { dModel: (await readModelShape(dirs.chat)).dModel });
  checkIdentity(`the SAE ${meta.sae}`, await saeIdentity(sae), meta.sae_identity);
  const data = await dashboardData({
    title: options.title,
    tables: options.tables,
    stats: files,
    prompts,
    tokenizer: await loadTokenizer(dirs.chat),
    cards: options.cards,
    async activations(model, requests) {
      const features = [...new Set(requests.flatMap((r) => r.features))].sort((a, b) => a - b);
      const subset = featureSubset(sae, features);
      const encoder = await createEncoder(subset.sae, options.device, { log });
      const handle = await loadForCapture(files[model].metadata.model, [layer], {
        device: options.device,
        dtype,
        log,
      }).catch((error) => {
        encoder.destroy();
        throw error;
      });
      try {
        return await tokenActivations(handle, encoder, subset.column, requests, { layer, batchSize });
      } finally {
        encoder.destroy();
        await handle.dispose();
      }
    },
    async explain(features) {
      const source = new ExplanationSource(meta.neuronpedia_id!, options.explanations);
      const found = new Map<number, Explanation[] | undefined>();
      for (const feature of features) found.set(feature, await source.get(feature));
      const note = source.unavailable
        ? `Neuronpedia explanations unavailable (${source.unavailable}): cards without a cached one say "no explanation cached".`
        : undefined;
      if (note) log?.(note);
      return { found, note };
    },
  });
  const out = dirOutput(outDir);
  await writeDashboardPage(out, "features.html", data);
  return { path: out.label("features.html"), cards: data.cards.length };
}
