/// <reference lib="dom" />
/**
 * The compute engine behind the page (web/engine_api.ts): the page's inputs turned into the CLI's
 * runs (web/engine/diff.ts, web/engine/steer.ts), their files handed back for download. Checkpoints go to the page's
 * origin-private storage under the run's fingerprint, so a reload and a second Run with the same
 * inputs resume where the first stopped, and other inputs never read them.
 *
 * @module
 */

import { UserError } from "../lib/core/errors.ts";
import type { FileSource } from "../lib/core/file_source.ts";
import type { CheckpointStore } from "../lib/analysis/collect.ts";
import { DIFF_DEFAULTS, STEER_DEFAULTS } from "../lib/cli/commands.ts";
import { ROLE_PROMPTS } from "../lib/analysis/role_swap.ts";
import { samplePrompts } from "../lib/io/prompt_parse.ts";
import { DEFAULT_TOP_EXAMPLES } from "../lib/analysis/diff_collect.ts";
import { parseTokenTypes } from "../lib/runtime/chat.ts";
import type { ByteStore, Engine, ModelInput, RunUi, SaeInput } from "./engine_api.ts";
import { type NamedFiles, runPageDiff } from "./engine/diff.ts";
import { runPageSteer } from "./engine/steer.ts";
import { hubSource } from "./platform/hub_source.ts";
import { memoryOutput } from "./platform/output.ts";

/** A model or SAE input as files and the name runs record it by (a hub id is read over HTTP, in ranges). */
function namedFiles(input: ModelInput | SaeInput, token?: string): NamedFiles {
  if (input.kind === "files") return { files: input.source, name: input.name };
  const source: FileSource = hubSource(input.id, { token });
  return { files: source, name: input.id };
}

/** A checkpoint kept in the page's storage under `key`. */
function storeCheckpoint(store: ByteStore, key: string): CheckpointStore {
  return {
    label: `the page's checkpoint ${key}`,
    load: () => store.get(key),
    save: (bytes) => store.put(key, bytes),
    remove: () => store.remove(key),
  };
}

/** The page's engine. */
export const engine: Engine = {
  async runDiff(inputs, ui: RunUi) {
    if (!inputs.prompts.prompts.length) throw new UserError(`${inputs.prompts.label} holds no prompts`);
    const checkpoints = await ui.cache("checkpoints");
    const out = memoryOutput();
    await runPageDiff(
      {
        base: namedFiles(inputs.base, inputs.hfToken),
        chat: namedFiles(inputs.chat, inputs.hfToken),
        sae: namedFiles(inputs.sae, inputs.hfToken),
        prompts: samplePrompts(inputs.prompts.prompts, inputs.n, inputs.seed),
        layer: inputs.layer,
        tokenTypes: parseTokenTypes(inputs.tokenTypes.join(",")),
        topK: inputs.topK,
        batchSize: inputs.batchSize,
        maxLength: inputs.maxLength ?? DIFF_DEFAULTS.maxLength,
        topExamples: DEFAULT_TOP_EXAMPLES,
        cards: DIFF_DEFAULTS.cards,
        checkpointEvery: inputs.checkpointEvery ?? DIFF_DEFAULTS.checkpointEvery,
        // Keyed by the run's fingerprint: only the same run's checkpoint is ever found.
        resume: true,
      },
      out,
      {
        progress: ui.progress,
        log: ui.log,
        signal: ui.signal,
        builds: await ui.cache("graphs"),
        resumeFrom: inputs.resumeFrom,
        checkpoint: (model, fingerprint) => storeCheckpoint(checkpoints, `${fingerprint}-${model}`),
      },
    );
    return out.files();
  },
  async steer(inputs, ui: RunUi) {
    const source = inputs.vector;
    if (source.kind === "adl" && !inputs.base) {
      throw new UserError("the ADL vector needs the base model too: pick its folder or enter its hub id");
    }
    const prompts = inputs.prompts?.prompts ?? ROLE_PROMPTS;
    if (!prompts.length) throw new UserError(`${inputs.prompts!.label} holds no prompts`);
    const out = memoryOutput();
    const result = await runPageSteer(
      {
        model: namedFiles(inputs.model, inputs.hfToken),
        layer: inputs.layer,
        vector: source.kind === "sae-feature"
          ? { kind: "sae-feature", sae: namedFiles(source.sae, inputs.hfToken), feature: source.feature }
          : source.kind === "adl"
          ? { kind: "adl", base: namedFiles(inputs.base!, inputs.hfToken) }
          : { kind: "role-swap" },
        // As `--mag` parses them: one column per distinct magnitude.
        magnitudes: [...new Set(inputs.magnitudes)],
        sampling: inputs.greedy ? { greedy: true } : {
          temperature: STEER_DEFAULTS.temperature,
          repetitionPenalty: STEER_DEFAULTS.repetitionPenalty,
          suppress: true,
        },
        seed: inputs.seed,
        prompts,
        maxNewTokens: inputs.maxNewTokens ?? STEER_DEFAULTS.maxNewTokens,
      },
      out,
      {
        log: ui.log,
        progress: ui.progress,
        signal: ui.signal,
        builds: await ui.cache("graphs"),
        start: ui.steering?.start,
        text: ui.steering?.text,
      },
    );
    return { magnitudes: [...new Set(inputs.magnitudes)], rows: result.rows, files: out.files() };
  },
};
