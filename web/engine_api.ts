/// <reference lib="dom" />
/**
 * What the page asks of the compute engine (web/engine.ts): a diff run and steered generation, with
 * inputs the page has already read from its form, and a {@linkcode RunUi} to report through. The page
 * owns every element; the engine never touches the DOM.
 *
 * @module
 */

import type { FileSource } from "../lib/core/file_source.ts";
import type { StartProgress } from "../lib/core/progress.ts";
import type { ByteStore } from "../lib/core/byte_store.ts";

/** A model: a folder the user picked (or its files), or a Hugging Face hub repo id. */
export type ModelInput =
  | { kind: "files"; source: FileSource; name: string }
  | { kind: "hub"; id: string };

/**
 * An SAE: a folder or file(s) the user picked, or a hub path / SAELens release id (`RELEASE/SAE_ID`),
 * as the CLI's `--sae` takes it.
 */
export type SaeInput =
  | { kind: "files"; source: FileSource; name: string }
  | { kind: "hub"; id: string };

/** Prompts, already parsed by the page (lib/io/prompt_parse.ts), not yet sampled. */
export interface PromptInput {
  /** Where they came from, for messages: the file's name or "pasted prompts". */
  label: string;
  prompts: string[];
}

/** A diff run's inputs: the CLI's `deno task diff` flags (lib/cli/commands.ts DIFF). */
export interface DiffInputs {
  base: ModelInput;
  chat: ModelInput;
  sae: SaeInput;
  prompts: PromptInput;
  /** Layer whose output the SAE reads; absent: the SAE's own (release id), else DIFF_DEFAULTS.layer. */
  layer?: number;
  /** Prompts to sample (absent: all). */
  n?: number;
  seed: number;
  /** Read positions (lib/runtime/chat.ts TOKEN_TYPES). */
  tokenTypes: string[];
  topK: number;
  batchSize: number;
  /**
   * Save a resume checkpoint every this many batches (0: never); absent: DIFF_DEFAULTS.checkpointEvery.
   * A Run whose inputs give the fingerprint of a saved checkpoint resumes from it.
   */
  checkpointEvery?: number;
  /**
   * Checkpoint files to resume from (`checkpoint_{base,chat}.safetensors`, as `deno task diff` writes
   * them, or as the page offers its own): each is used for the model of this run it belongs to.
   */
  resumeFrom?: { name: string; bytes: Uint8Array }[];
  /** Tokens per prompt before truncation; absent: DIFF_DEFAULTS.maxLength. */
  maxLength?: number;
  /** Hugging Face token for gated hub repos. */
  hfToken?: string;
}

export type { ByteStore };

/** How an engine call reports back and learns it was cancelled. */
export interface RunUi {
  /** Progress per piece of work: label it by model ("base", "chat"), total in prompts. */
  progress: StartProgress;
  /** One line for the page's log. */
  log(line: string): void;
  /** Aborted when the user presses Cancel: stop soon and reject with `signal.reason`. */
  signal: AbortSignal;
  /** The persistent store for one kind of cache ("weights", "graphs", "checkpoints", ...). */
  cache(kind: string): Promise<ByteStore>;
  /** Steered generations as they are produced (absent: only the finished result is shown). */
  steering?: SteerStream;
}

/** How steering shows its responses while they are generated: a table of prompts × magnitudes. */
export interface SteerStream {
  /** Once, before the first response: one row per prompt, one column per magnitude. */
  start(prompts: readonly string[], magnitudes: readonly number[]): void;
  /** A piece of the response to prompt `row` at magnitude `column` (indices into `start`'s), as generated. */
  text(row: number, column: number, text: string): void;
}

/** One file a run wrote: offered as a download, `feature_increases.html` also shown in the page. */
export interface RunFile {
  name: string;
  bytes: Uint8Array;
  /** MIME type, e.g. "text/html", "text/csv", "application/octet-stream". */
  type: string;
}

/** Every file a run wrote. */
export type RunFiles = RunFile[];

/** Where a steering vector comes from. */
export type VectorSource =
  /** The contrast of normal and role-swapped prompts at the layer (`deno task sweep-layers`). */
  | { kind: "role-swap" }
  /** The activation-difference lens of base and chat (`deno task adl`): not in the page yet. */
  | { kind: "adl" }
  /** One SAE feature's decoder direction W_dec[feature] (`deno task vector --sae --feature`). */
  | { kind: "sae-feature"; sae: SaeInput; feature: number };

/** Steered generation's inputs: the CLI's `deno task steer` flags (lib/cli/commands.ts STEER). */
export interface SteerInputs {
  /** The model generating (the page passes the chat model). */
  model: ModelInput;
  /** The base model, for vector sources that need both (ADL). */
  base?: ModelInput;
  /** Layer to steer after; absent: the SAE's layer for an SAE feature, else the middle one. */
  layer?: number;
  vector: VectorSource;
  magnitudes: number[];
  greedy: boolean;
  /** Prompts to answer; absent: the notebook's six questions. */
  prompts?: PromptInput;
  /** Sampling seed (the CLI's `--seed`); unused when greedy. */
  seed: number;
  /** Absent: the CLI's default for a given model (STEER_DEFAULTS.maxNewTokens). */
  maxNewTokens?: number;
  hfToken?: string;
}

/** Steered generations: `responses[i]` answers `prompt` at `magnitudes[i]`. */
export interface SteerResult {
  magnitudes: number[];
  rows: { prompt: string; responses: string[] }[];
  /**
   * Files to offer as downloads: `{short}_layer{L}_steer.json` and its `.run.json` record (what
   * `deno task steer --out-dir` extends), the notebook's `swapped_user_role.json`, and for the
   * role-swap vector the sweep's outputs with `contrast_vectors.safetensors`.
   */
  files: RunFiles;
}

/** The compute side of the page. Failures the user can fix reject with a UserError (lib/core/errors.ts). */
export interface Engine {
  runDiff(inputs: DiffInputs, ui: RunUi): Promise<RunFiles>;
  steer(inputs: SteerInputs, ui: RunUi): Promise<SteerResult>;
}
