/**
 * End-to-end rows of `deno task bench`: what a user waits for, measured for every device in the same
 * run on the same inputs. `diff` prompts per second on the demo fixtures (both models, loads included,
 * caches warm), `kl` tokens per second, greedy generation tokens per second on the tiny Gemma fixture,
 * and a warm model load per GB of weights: in this process, and as `capture` of one prompt in a fresh
 * process on a generated ~200 MB model.
 *
 * @module
 */

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { renderNormal, tokenizeRendered } from "../runtime/chat.ts";
import { type DeviceChoice, DEVICES, resolveDevice } from "../backend/device.ts";
import { ensureFixtureModel, ensureFixtureSae } from "../fixtures/build.ts";
import { writeFixtureModel } from "../fixtures/models.ts";
import { DEMO_PROMPTS } from "../fixtures/prompts.ts";
import { LLAMA_CONFIG } from "../fixtures/spec.ts";
import { generateGreedy } from "../runtime/generation.ts";
import { SETTLE_MS } from "../io/file_memo.ts";
import { runKl } from "../run/kl.ts";
import { collectDiff } from "../run/diff_run.ts";
import { loadModel, type ModelHandle } from "../runtime/runtime.ts";
import { type BenchRow, type BenchSection, medianSeconds } from "./table.ts";
import { loadForCapture } from "../runtime/runtime.ts";

const CHOICES: readonly DeviceChoice[] = [...DEVICES, "auto"];

/** How much each end-to-end measure does: the full set, or a quick one that shows the same rows. */
export interface EndToEndSizes {
  /** Demo prompts per `diff` run and per `kl` run. */
  diffPrompts: number;
  klPrompts: number;
  /** New tokens per generation. */
  generationTokens: number;
  /**
   * The load measures' model: "full" is ~200 MB and adds `capture` in fresh processes (cold, then
   * warm); "quick" is a ~30 MB model loaded in this process only (cold, then the timed warm load).
   */
  load: "full" | "quick";
}

/** The sizes of `--only end-to-end` and of the full report, and of `--report --quick`. */
export const END_TO_END_SIZES: Record<"full" | "quick", EndToEndSizes> = {
  full: { diffPrompts: DEMO_PROMPTS.length, klPrompts: 16, generationTokens: 40, load: "full" },
  quick: { diffPrompts: 4, klPrompts: 2, generationTokens: 4, load: "quick" },
};

async function seconds(run: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await run();
  return (performance.now() - start) / 1000;
}

/**
 * `diff` collection (collectDiff: both models, the SAE encode and statistics, loads and fingerprint
 * included) of the first `prompts` demo prompts on the Llama demo pair (the largest fixture pair: 128k
 * vocabulary), per device; the first run of each warms its caches and is not counted.
 */
export async function diffRows(reps: number, prompts = DEMO_PROMPTS.length): Promise<BenchRow[]> {
  const base = await ensureFixtureModel("tiny-llama-base");
  const chat = await ensureFixtureModel("tiny-llama-chat");
  const sae = await ensureFixtureSae("tiny-llama-sae-llamascope");
  const outDir = await Deno.makeTempDir({ prefix: "bench-diff-" });
  const rows: BenchRow[] = [];
  try {
    // webgpu twice: residuals kept on the shared device (what runs), and read back to the host and
    // uploaded again (the path before one device was shared), to show what the round trip costs.
    const peers = [...CHOICES.map((choice) => ({ choice, hostRoundTrip: false })), {
      choice: "webgpu" as const,
      hostRoundTrip: true,
    }];
    for (const { choice, hostRoundTrip } of peers) {
      const device = await resolveDevice(choice);
      const run = () =>
        collectDiff({
          base,
          chat,
          sae,
          layer: 2,
          prompts: DEMO_PROMPTS.slice(0, prompts),
          tokenTypes: ["asst", "endheader", "newline"],
          batchSize: 32,
          maxLength: 512,
          checkpointEvery: 0,
          resume: false,
          device,
          outDir,
          hostRoundTrip,
        });
      const t = await medianSeconds(reps, run);
      rows.push({
        measure: `diff, ${prompts} demo prompts x 2 models, 128k vocabulary`,
        peer: choice === "auto" ? `auto (-> ${device})` : hostRoundTrip ? "webgpu, residuals via the host" : choice,
        value: prompts / t,
        unit: "prompts/s",
        note: `${t.toFixed(2)} s per run`,
      });
    }
  } finally {
    await Deno.remove(outDir, { recursive: true });
  }
  return rows;
}

/**
 * `kl` on the Llama fixtures (128k vocabulary): tokens per second of `runKl` (both models' forward, the
 * per-token KL kernel; loads included, caches warm), per device. On webgpu the logits stay on the GPU
 * and are gathered there; on cpu they come from onnxruntime-node and are uploaded to the KL kernel.
 */
export async function klRows(reps: number, prompts = 16): Promise<BenchRow[]> {
  const base = await ensureFixtureModel("tiny-llama-base");
  const chat = await ensureFixtureModel("tiny-llama-chat");
  const rows: BenchRow[] = [];
  for (const choice of CHOICES) {
    const device = await resolveDevice(choice);
    let tokens = 0;
    const t = await medianSeconds(reps, async () => {
      const run = await runKl({
        base,
        chat,
        prompts: DEMO_PROMPTS.slice(0, prompts),
        tokenTypes: ["asst", "endheader", "newline"],
        batchSize: 8,
        maxLength: 512,
        device,
      });
      tokens = run.tokens.length;
    });
    rows.push({
      measure: `kl, ${prompts} demo prompts, 128k vocabulary`,
      peer: choice === "auto" ? `auto (-> ${device})` : choice,
      value: tokens / t,
      unit: "tokens/s",
      note: `${tokens} tokens, ${t.toFixed(2)} s per run`,
    });
  }
  return rows;
}

/** Greedy generation of `tokens` new tokens on the tiny Gemma fixture, per device (load excluded). */
export async function generationRows(tokens: number): Promise<BenchRow[]> {
  const source = await ensureFixtureModel("tiny-gemma2-chat");
  const rows: BenchRow[] = [];
  for (const choice of CHOICES) {
    const device = await resolveDevice(choice);
    const handle = await loadModel(source, { device });
    try {
      const ids = tokenizeRendered(handle, renderNormal(handle, "What is the capital of France?"));
      await generateGreedy(handle, ids, Math.min(4, tokens));
      let produced = 0;
      const t = await seconds(async () => produced = (await generateGreedy(handle, ids, tokens)).length);
      rows.push({
        measure: `generation, tiny Gemma fixture, ${tokens} new tokens`,
        peer: choice === "auto" ? `auto (-> ${device})` : choice,
        value: produced / t,
        unit: "tokens/s",
      });
    } finally {
      await handle.dispose();
    }
  }
  return rows;
}

/**
 * A Llama-architecture model (Llama 3.1 vocabulary) with its weights inline in `model.onnx`, the
 * layout whose every-run graph decoding once dominated loading: about 200 MB (d_model 192, 6 layers),
 * or for a quick run about 30 MB (d_model 32, 2 layers).
 */
async function writeLoadModel(dir: string, size: "full" | "quick"): Promise<number> {
  const shape = size === "full"
    ? { hiddenSize: 192, intermediateSize: 768, numLayers: 6, headDim: 48 }
    : { hiddenSize: 32, intermediateSize: 64, numLayers: 2, headDim: 8 };
  const config = { ...LLAMA_CONFIG, ...shape };
  await writeFixtureModel({ name: "bench-load", config, variant: "base", seed: 7, externalData: false }, dir);
  return (await Deno.stat(join(dir, "onnx", "model.onnx"))).size;
}

/**
 * Warm load, per device, on a generated model after a cold run filled the caches (rewritten graph,
 * file stamps; both in a temporary directory): the model load alone in this process (identity,
 * rewrite-cache lookup, ORT session; its tokenizer, the Llama 3.1 one, is already built here by the
 * diff rows), per GB; with the "full" model also `deno task capture` of one prompt in a fresh process,
 * beside the same process doing nothing (`--help`: what any task pays to start).
 */
export async function loadRows(size: "full" | "quick" = "full"): Promise<BenchRow[]> {
  const root = await Deno.makeTempDir({ prefix: "bench-load-" });
  const cache = { MODEL_DIFF_CACHE: join(root, "rewritten"), MODEL_DIFF_FILE_MEMO: join(root, "file-memo") };
  const saved = Object.fromEntries(Object.keys(cache).map((k) => [k, Deno.env.get(k)]));
  try {
    const model = join(root, "model");
    const bytes = await writeLoadModel(model, size);
    const prompts = join(root, "prompts.txt");
    await Deno.writeTextFile(prompts, "What is the capital of France?\n");
    for (const [k, v] of Object.entries(cache)) Deno.env.set(k, v);
    // Stamps are only taken of settled files (lib/io/file_memo.ts): let the new model settle first.
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS + 100));
    const gb = bytes / 1e9;
    const mb = `${(gb * 1000).toFixed(0)} MB inline-weight model`;
    const rows: BenchRow[] = [];
    const processes = size === "full";
    if (processes) {
      const startup = await seconds(() => runCapture(["--help"]));
      rows.push({ measure: "process start (capture --help)", peer: "-", value: startup, unit: "s" });
    }
    const load = async (device: (typeof DEVICES)[number]) => {
      let handle: ModelHandle | undefined;
      const t = await seconds(async () => handle = await loadForCapture(model, [0], { device }));
      await handle?.dispose();
      return t;
    };
    for (const device of DEVICES) {
      // Without the fresh processes, a load in this process is the cold run that fills the caches.
      const cold = processes ? undefined : await load(device);
      if (processes) {
        const args = ["--model", model, "--prompts", prompts, "--layers", "0", "--device", device];
        const first = await seconds(() => runCapture([...args, "--out", join(root, `cold-${device}.safetensors`)]));
        const warm = await seconds(() => runCapture([...args, "--out", join(root, `warm-${device}.safetensors`)]));
        rows.push({
          measure: `warm capture of 1 prompt (fresh process), ${mb}`,
          peer: device,
          value: warm,
          unit: "s",
          note: `cold ${first.toFixed(2)} s`,
        });
      }
      const t = await load(device);
      rows.push({
        measure: `warm model load (identity, cache, session), ${mb}`,
        peer: device,
        value: t / gb,
        unit: "s/GB",
        note: `${t.toFixed(2)} s${cold === undefined ? "" : `; cold, in this process, ${cold.toFixed(2)} s`}`,
      });
    }
    return rows;
  } finally {
    for (const [k, v] of Object.entries(saved)) v === undefined ? Deno.env.delete(k) : Deno.env.set(k, v);
    await Deno.remove(root, { recursive: true });
  }
}

async function runCapture(args: string[]): Promise<void> {
  const script = fileURLToPath(new URL("../../scripts/capture.ts", import.meta.url));
  const result = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, ...args],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!result.success) throw new Error(`capture ${args.join(" ")} failed: ${new TextDecoder().decode(result.stderr)}`);
}

/** Every end-to-end row (diff, kl, generation, warm load) at `sizes`, against webgpu. */
export async function endToEndSection(reps: number, sizes: EndToEndSizes): Promise<BenchSection> {
  const rows = [
    ...await diffRows(reps, sizes.diffPrompts),
    ...await klRows(reps, sizes.klPrompts),
    ...await generationRows(sizes.generationTokens),
    ...await loadRows(sizes.load),
  ];
  return { title: "end to end", versus: "webgpu", rows };
}
