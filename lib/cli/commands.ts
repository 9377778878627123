/**
 * The flag table of every task: the parser (lib/cli/flags.ts `parseFlags`) and the `--help` text are both
 * made from it, so the two cannot drift apart.
 *
 * @module
 */

import type { CommandSpec } from "./flags.ts";

const device = {
  type: "string",
  default: "auto",
  description:
    "auto (webgpu on a hardware GPU, else cpu; one line says which and why), webgpu (Deno's navigator.gpu) or cpu (onnxruntime-node)",
} as const;

const dtype = {
  type: "string",
  description: "precision of a graph built from a Hugging Face checkpoint: fp32 or fp16 " +
    "(default fp16 on a hardware GPU with shader-f16, else fp32)",
} as const;

const skipBadRecords = {
  type: "boolean",
  default: false,
  description: "leave out records of the prompt file without a prompt (counted) instead of stopping",
} as const;

/**
 * The flags every two-model task (diff, kl, adl, crosscoder) shares, meaning the same in each: the
 * pair, the prompts and their sample, the read positions, truncation and the device.
 */
const PAIR = {
  base: { type: "string", description: "base model directory or hub id (default: the built-in Llama fixture)" },
  chat: { type: "string", description: "chat model directory or hub id (default: the built-in Llama fixture)" },
  prompts: { type: "string", description: "prompt file (default: the built-in demo prompts)" },
  "skip-bad-records": skipBadRecords,
  n: { type: "string", description: "prompts to sample (default: all)" },
  seed: { type: "string", default: "42", description: "sampling seed" },
  "token-types": { type: "string", default: "asst,endheader,newline", description: "read positions" },
  "max-length": { type: "string", description: "tokens per prompt before truncation (default 512)" },
  device,
  dtype,
  "allow-mismatch": { type: "boolean", default: false, description: "allow base and chat of different models" },
} as const;

/** `deno task generate`. */
export const GENERATE = {
  task: "generate",
  summary: "Greedy chat completion from any model; without --model, from both built-in tiny models.",
  flags: {
    model: { type: "string", description: "model directory or hub id (default: the built-in fixtures)" },
    prompt: { type: "string", default: "What is the capital of France?", description: "the user message" },
    "max-new-tokens": { type: "string", description: "tokens to generate (default 20)" },
    device,
    dtype,
  },
  examples: ["deno task generate", "deno task generate --model ./models/Llama-3.1-8B-Instruct --prompt Hello"],
} satisfies CommandSpec;

/** `deno task capture`. */
export const CAPTURE = {
  task: "capture",
  summary: "Residual-stream activations of chosen layers and positions to a safetensors file.",
  flags: {
    model: { type: "string", description: "model directory or hub id (default: the built-in Llama fixture)" },
    prompts: {
      type: "string",
      description: "prompt file (.txt, .jsonl, .json, .csv, .parquet); required with --model",
    },
    "skip-bad-records": skipBadRecords,
    layers: { type: "string", default: "all", description: "layers to read: all, a list 0,2,5 or a range 3-7" },
    positions: { type: "string", default: "last", description: "last, all, or token types asst,endheader,newline" },
    out: { type: "string", description: "output .safetensors file (default results/capture-demo.safetensors)" },
    raw: { type: "boolean", default: false, description: "use the prompts as they are, without the chat template" },
    device,
    dtype,
    "batch-size": { type: "string", description: "prompts per forward pass (default 8)" },
    "max-length": { type: "string", description: "tokens per prompt before truncation (default 512)" },
  },
  examples: [
    "deno task capture",
    "deno task capture --model ./chat-onnx --prompts prompts.jsonl --layers 10-14 --out acts.safetensors",
  ],
} satisfies CommandSpec;

/**
 * `deno task diff`'s defaults that its flag table states only in words (the flag has no value until the
 * script picks one): the script and the web page's pre-filled fields both read them from here.
 */
export const DIFF_DEFAULTS = {
  /** Layer whose output the SAE reads, without a preset or release id. */
  layer: 2,
  batchSize: 32,
  topK: 100,
  maxLength: 512,
  cards: 10,
  checkpointEvery: 10,
} as const;

/** `deno task diff`. */
export const DIFF = {
  task: "diff",
  summary: "Base vs chat SAE feature diffing; without --base/--chat/--preset, the demo with a known answer.",
  flags: {
    ...PAIR,
    preset: { type: "string", description: "a notebook configuration: llama31-8b or gemma2-9b" },
    sae: {
      type: "string",
      description: "SAE directory, hub path (SAELens, Llama Scope, Gemma Scope, Gemma Scope 2) or SAELens " +
        "release id RELEASE/SAE_ID (RELEASE alone lists its ids)",
    },
    layer: {
      type: "string",
      description:
        `layer whose output the SAE reads (default: the preset's, the release id's, or ${DIFF_DEFAULTS.layer})`,
    },
    "batch-size": { type: "string", description: `prompts per forward pass (default ${DIFF_DEFAULTS.batchSize})` },
    "top-k": { type: "string", description: `rows per token type in the tables (default ${DIFF_DEFAULTS.topK})` },
    "top-examples": {
      type: "string",
      description: "top activating prompts kept per feature, read position and model (default 10; 0 = none)",
    },
    cards: {
      type: "string",
      description: "feature dashboards (features.html) for the first N rows per read position of each table " +
        `(default ${DIFF_DEFAULTS.cards}; 0 = none)`,
    },
    decreases: { type: "boolean", default: false, description: "also write top_decreases_*.csv" },
    "out-dir": { type: "string", description: "output directory (default results/diff-demo or results/diff)" },
    "checkpoint-every": {
      type: "string",
      description: `batches between checkpoints, 0 = never (default ${DIFF_DEFAULTS.checkpointEvery})`,
    },
    resume: { type: "boolean", default: false, description: "continue an interrupted run" },
    shard: { type: "string", description: "collect slice i of n (i/n) of the prompts only" },
    merge: { type: "boolean", default: false, description: "combine all shards in --out-dir and report" },
    "report-only": {
      type: "boolean",
      default: false,
      description: "report the statistics already in --out-dir (an earlier run, or the page's downloads)",
    },
  },
  examples: ["deno task diff", "deno task diff --preset llama31-8b --prompts lmsys.parquet --n 1000 --out-dir r/l"],
} satisfies CommandSpec;

/** `deno task sweep-layers`. */
export const SWEEP_LAYERS = {
  task: "sweep-layers",
  summary: "Role-swap sweep: normal vs role-swapped prompts at every layer, contrast vectors and a plot.",
  flags: {
    model: { type: "string", description: "model directory or hub id (default: the built-in Gemma fixture)" },
    prompts: { type: "string", description: "prompt file (default: the notebook's six questions)" },
    "skip-bad-records": skipBadRecords,
    position: { type: "string", default: "last", description: "read position: last, asst, endheader or newline" },
    "batch-size": { type: "string", description: "prompts per forward pass (default 8)" },
    "max-length": { type: "string", description: "tokens per prompt before truncation (default 512)" },
    "out-dir": { type: "string", description: "output directory (default results/<model short name>)" },
    "model-short": { type: "string", description: "short model name for file names (default: from --model)" },
    device,
    dtype,
  },
  examples: ["deno task sweep-layers", "deno task sweep-layers --model onnx-community/gemma-2-2b-it --device cpu"],
} satisfies CommandSpec;

/** `deno task steer`. */
/** Defaults of `deno task steer` (and the page's steering panel) that its flags leave unset. */
export const STEER_DEFAULTS = {
  /** The notebook's response length for real models. */
  maxNewTokens: 300,
  /** On the built-in model: enough to show the effect, about a minute on a CPU-only machine. */
  fixtureMaxNewTokens: 40,
  temperature: 0.7,
  repetitionPenalty: 1.1,
  samples: 1,
} as const;

export const STEER = {
  task: "steer",
  summary: "Generation with a vector applied after a layer at each magnitude; computes the vector if missing.",
  flags: {
    mag: { type: "string", default: "-3,3", description: "comma-separated magnitudes" },
    model: { type: "string", description: "model directory or hub id (default: the built-in Gemma fixture)" },
    layer: { type: "string", description: "layer to steer after (default: the middle one)" },
    vector: {
      type: "string",
      description: "vector file: .safetensors, .npy, .json or a llama.cpp control vector .gguf " +
        "(default: <out-dir>/contrast_vectors.safetensors, computed)",
    },
    "vector-name": { type: "string", description: "tensor name in a safetensors vector file" },
    kind: { type: "string", default: "addition", description: "addition, ablation, mean_ablation or capping" },
    positions: { type: "string", default: "all", description: "positions to steer: all or last" },
    prompts: { type: "string", description: "prompt file (default: the notebook's six questions)" },
    "skip-bad-records": skipBadRecords,
    samples: {
      type: "string",
      description: `responses per prompt and magnitude (default ${STEER_DEFAULTS.samples})`,
    },
    resume: { type: "boolean", default: false, description: "only generate what the results file lacks" },
    baseline: { type: "boolean", default: false, description: "also generate without any intervention" },
    seed: { type: "string", default: "0", description: "sampling seed" },
    "max-new-tokens": {
      type: "string",
      description:
        `tokens per response (default ${STEER_DEFAULTS.maxNewTokens}; ${STEER_DEFAULTS.fixtureMaxNewTokens} ` +
        "on the built-in model)",
    },
    temperature: { type: "string", description: `sampling temperature (default ${STEER_DEFAULTS.temperature})` },
    "repetition-penalty": {
      type: "string",
      description: `repetition penalty (default ${STEER_DEFAULTS.repetitionPenalty})`,
    },
    "no-suppress": { type: "boolean", default: false, description: "allow the end-of-turn and blank-line tokens" },
    greedy: { type: "boolean", default: false, description: "greedy decoding instead of sampling" },
    "out-dir": { type: "string", description: "output directory (default results/<model short name>)" },
    "model-short": { type: "string", description: "short model name for file names (default: from --model)" },
    device,
    dtype,
  },
  examples: ["deno task steer --mag -3,3", "deno task steer --model ./gemma-2-9b-it --layer 20 --mag -8,-4,4,8"],
} satisfies CommandSpec;

/** `deno task vector`. */
export const VECTOR = {
  task: "vector",
  summary: "A steering vector or SAE feature direction as a llama.cpp control vector (GGUF, as repeng writes it).",
  flags: {
    out: { type: "string", description: "the .gguf file to write (required)" },
    vector: {
      type: "string",
      description: "source: contrast_vectors.safetensors, adl_vectors.safetensors or any vector file",
    },
    "vector-name": { type: "string", description: "tensor in a safetensors source (an ADL position: adl.asst)" },
    sae: { type: "string", description: "source: an SAE (directory, hub path or RELEASE/SAE_ID), with --feature" },
    feature: { type: "string", description: "the SAE feature whose decoder direction is written" },
    layer: {
      type: "string",
      description: "layer(s) the vector steers after: L, a list 3,5 or all (contrast files); default: the ADL " +
        "file's or the SAE's layer",
    },
    mag: {
      type: "string",
      description: "fold this magnitude into the vector (default: none; scale it in llama.cpp with " +
        "--control-vector-scaled FILE MAG)",
    },
    model: { type: "string", description: "the model it is for: checks width and layers, gives the model hint" },
    "model-hint": { type: "string", description: "controlvector.model_hint (default: the model's model_type)" },
  },
  examples: [
    "deno task vector --vector results/gemma-2-9b-it/contrast_vectors.safetensors --layer all --model ./gemma-2-9b-it --out v.gguf",
    "deno task vector --sae gemma-scope-2b-pt-res-canonical/layer_12/width_16k/canonical --feature 1234 --mag 8 --model-hint gemma2 --out f.gguf",
  ],
} satisfies CommandSpec;

/** `deno task bench`. */
export const BENCH = {
  task: "bench",
  summary: "SAE-encoder throughput against onnxruntime-web and onnxruntime-node; diff, generation and load per device.",
  flags: {
    shapes: {
      type: "string",
      default: "small,gemma",
      description: "comma-separated: small, gemma (96x2304x16384), llama (96x4096x131072, needs ~8 GB), or all",
    },
    reps: { type: "string", default: "3", description: "repetitions per measurement (median)" },
    only: {
      type: "string",
      description:
        "kernels (WebGPU and CPU encode, statistics, cosine), cpu-encode (the CPU encode alone), end-to-end (diff, generation, load) or finite-check (the weight checks' cost in a warm diff and a cold build); default all",
    },
    convert: {
      type: "boolean",
      default: false,
      description: "only the checkpoint conversion report: MB/s and peak RSS (largest F16/BF16 fixture)",
    },
    checkpoint: { type: "string", description: "the conversion report on this checkpoint directory instead" },
    report: {
      type: "string",
      description:
        "run the whole measurement set (every shape incl. 96x4096x131072 in f32 and f16, diff, kl, generation, load) and write it as one markdown table to this file",
    },
    quick: {
      type: "boolean",
      default: false,
      description: "with --report: the same rows at small sizes (seconds on a software adapter; for tests)",
    },
  },
  examples: ["deno task bench --shapes small --only kernels", "deno task bench --report bench.md"],
} satisfies CommandSpec;

/** `deno task cache`. */
export const CACHE = {
  task: "cache",
  summary:
    "Lists the cache (converted checkpoints, rewritten graphs, shared weights) with size and last use, or clears it.",
  positionals: "[list | clear [ID...]]",
  flags: {
    "older-than": {
      type: "string",
      description: "with clear: only entries last used longer ago than this (e.g. 30m, 12h, 7d)",
    },
  },
  examples: ["deno task cache", "deno task cache clear --older-than 7d"],
} satisfies CommandSpec;

/** `deno task mutants`. */
export const MUTANTS = {
  task: "mutants",
  summary: "Seeds each known bug of tests/mutants.json into a copy of the repository and runs its covering tests.",
  flags: {
    only: { type: "string", description: "comma-separated mutant ids to run (default: all)" },
    list: { type: "string", default: "tests/mutants.json", description: "the mutant list" },
    timeout: { type: "string", description: "seconds per mutant's test run (default 600)" },
    "no-baseline": {
      type: "boolean",
      default: false,
      description: "skip checking that the covering tests pass on the unmutated code",
    },
  },
  examples: ["deno task mutants", "deno task mutants --only steer-sign,resume-skips-batch"],
} satisfies CommandSpec;

/** `deno task kl`. */
export const KL = {
  task: "kl",
  summary: "Per-token KL(chat ‖ base) over the same prompts; without --base/--chat, on the built-in tiny models.",
  flags: {
    ...PAIR,
    "batch-size": { type: "string", description: "prompts per forward pass (default 4: both models' logits are held)" },
    "token-types": { type: "string", default: "asst,endheader,newline", description: "read positions to group by" },
    top: { type: "string", description: "highest-KL tokens to list with context (default 100)" },
    "out-dir": { type: "string", description: "output directory (default results/kl-demo or results/kl)" },
  },
  examples: [
    "deno task kl",
    "deno task kl --base ./Llama-3.1-8B --chat ./Llama-3.1-8B-Instruct --prompts p.jsonl --n 200",
  ],
} satisfies CommandSpec;

/** `deno task adl`'s defaults, as values (the script, its help and the page's ADL vector read them). */
export const ADL_DEFAULTS = {
  firstN: 5,
  top: 20,
  batchSize: 8,
  maxLength: 512,
} as const;

/** `deno task adl`. */
export const ADL = {
  task: "adl",
  summary:
    "Activation-difference lens: mean(chat − base) residual per read position through the chat model's unembedding, " +
    "its cosine with every layer's contrast vector, saved as steering vectors.",
  flags: {
    ...PAIR,
    chat: {
      type: "string",
      description: "chat model: a Hugging Face checkpoint (default: the built-in Llama fixture)",
    },
    layer: { type: "string", description: "layer whose output is read (default: the middle one)" },
    "token-types": { type: "string", default: "asst,endheader,newline", description: "chat-template read positions" },
    "first-n": {
      type: "string",
      default: String(ADL_DEFAULTS.firstN),
      description: "also the first n tokens of each prompt as plain text",
    },
    top: { type: "string", description: `promoted and suppressed tokens per position (default ${ADL_DEFAULTS.top})` },
    contrast: {
      type: "string",
      description:
        "contrast_vectors.safetensors of sweep-layers (default: results/<chat short name>/, computed if missing)",
    },
    "no-contrast": { type: "boolean", default: false, description: "skip the cosines with the contrast vectors" },
    "batch-size": { type: "string", description: `prompts per forward pass (default ${ADL_DEFAULTS.batchSize})` },
    "out-dir": { type: "string", description: "output directory (default results/adl-demo or results/adl)" },
  },
  examples: ["deno task adl", "deno task adl --base ./gemma-2-2b --chat ./gemma-2-2b-it --layer 13 --prompts p.jsonl"],
} satisfies CommandSpec;

/** `deno task crosscoder`. */
export const CROSSCODER = {
  task: "crosscoder",
  summary: "Base vs chat crosscoder: paired residuals encoded, decoder-norm ratios, cosines and tags per latent; " +
    "without --base/--chat/--crosscoder, on the built-in tiny models.",
  flags: {
    ...PAIR,
    crosscoder: {
      type: "string",
      description: "crosscoder directory or hub path: dictionary_learning (config.json + model.safetensors) or " +
        "TransformerLens replication (cfg.json + cc_weights.pt) (default: the built-in fixture)",
    },
    layer: { type: "string", description: "layer whose output is read (default: the crosscoder's, else the middle)" },
    "input-scale": {
      type: "string",
      description: "TransformerLens layout: base,chat factors its training scaled the residuals by (default 1,1)",
    },
    "batch-size": { type: "string", description: "prompts per forward pass (default 8)" },
    "out-dir": {
      type: "string",
      description: "output directory (default results/crosscoder-demo or results/crosscoder)",
    },
  },
  examples: [
    "deno task crosscoder",
    "deno task crosscoder --base ./gemma-2-2b --chat ./gemma-2-2b-it --crosscoder org/repo --prompts p.jsonl",
  ],
} satisfies CommandSpec;

/** `deno task test`. */
export const TEST = {
  task: "test",
  summary:
    "The test suite: fixtures built once, then the test files dealt into parallel deno test processes balanced by their recorded durations.",
  positionals: "[test files or directories: run just those, in one process]",
  flags: {
    jobs: { type: "string", description: "parallel processes (default: the CPU count, at most 4)" },
    record: {
      type: "boolean",
      default: false,
      description: "write each file's duration in this run to tests/durations.json (for balancing)",
    },
    filter: { type: "string", description: "run only tests whose name matches (deno test --filter), in one process" },
  },
  examples: ["deno task test", "deno task test tests/kl_test.ts tests/kernels/"],
} satisfies CommandSpec;

/** Every task with flags, by script file name (the help test walks it). */
export const COMMANDS: Record<string, CommandSpec> = {
  "generate.ts": GENERATE,
  "capture.ts": CAPTURE,
  "diff.ts": DIFF,
  "sweep_layers.ts": SWEEP_LAYERS,
  "steer.ts": STEER,
  "vector.ts": VECTOR,
  "bench.ts": BENCH,
  "mutants.ts": MUTANTS,
  "cache.ts": CACHE,
  "kl.ts": KL,
  "adl.ts": ADL,
  "crosscoder.ts": CROSSCODER,
  "test.ts": TEST,
};

/** `deno task web`. */
export const WEB = {
  task: "web",
  summary: "The diff and steering as a web page on the browser's own WebGPU: builds the static site and serves it.",
  flags: {
    out: { type: "string", default: "results/web", description: "folder the site is built into" },
    port: { type: "string", default: "8000", description: "port to serve on (127.0.0.1 only)" },
    "build-only": {
      type: "boolean",
      default: false,
      description: "build the site and exit (any static host can serve the folder)",
    },
  },
  examples: ["deno task web", "deno task web --build-only --out site"],
} satisfies CommandSpec;
