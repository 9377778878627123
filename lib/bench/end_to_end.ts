/**
 * End-to-end rows of `deno task bench`: what a user waits for, measured for every device in the same
 * run on the same inputs. `diff` prompts per second on the demo fixtures (both models, loads included,
 * caches warm), `kl` tokens per second, greedy generation tokens per second on the tiny Gemma fixture, and a warm model load:
 * `capture` of one prompt in a fresh process on a generated ~200 MB model, per GB of weights.
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
import { runKl } from "../analysis/kl.ts";
import { collectDiff } from "../run/diff_run.ts";
import { loadModel, type ModelHandle } from "../runtime/runtime.ts";
import { type BenchRow, medianSeconds } from "./table.ts";
import { loadForCapture } from "../runtime/activations.ts";

const CHOICES: readonly DeviceChoice[] = [...DEVICES, "auto"];

async function seconds(run: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await run();
  return (performance.now() - start) / 1000;
}

/**
 * `diff` collection (collectDiff: both models, the SAE encode and statistics, loads and fingerprint
 * included) on the demo fixtures, per device; the first run of each warms its caches and is not counted.
 */
export async function diffRows(reps: number): Promise<BenchRow[]> {
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
          prompts: DEMO_PROMPTS,
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
        measure: `diff, ${DEMO_PROMPTS.length} demo prompts x 2 models`,
        peer: choice === "auto" ? `auto (-> ${device})` : hostRoundTrip ? "webgpu, residuals via the host" : choice,
        value: DEMO_PROMPTS.length / t,
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
      await generateGreedy(handle, ids, 4);
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
 * A Llama-architecture model of about 200 MB (Llama 3.1 vocabulary, d_model 192, 6 layers) with its
 * weights inline in `model.onnx`, the layout whose every-run graph decoding once dominated loading.
 */
async function writeLoadModel(dir: string): Promise<number> {
  const config = { ...LLAMA_CONFIG, hiddenSize: 192, intermediateSize: 768, numLayers: 6, headDim: 48 };
  await writeFixtureModel({ name: "bench-load", config, variant: "base", seed: 7, externalData: false }, dir);
  return (await Deno.stat(join(dir, "onnx", "model.onnx"))).size;
}

/**
 * Warm load, per device, on a generated ~200 MB model after a cold run filled the caches (rewritten
 * graph, file stamps; both in a temporary directory): `deno task capture` of one prompt in a fresh
 * process, beside the same process doing nothing (`--help`: what any task pays to start); and the
 * model load alone in this process (identity, rewrite-cache lookup, ORT session; its tokenizer, the
 * Llama 3.1 one, is already built here by the diff rows), per GB.
 */
export async function loadRows(): Promise<BenchRow[]> {
  const root = await Deno.makeTempDir({ prefix: "bench-load-" });
  const cache = { MODEL_DIFF_CACHE: join(root, "rewritten"), MODEL_DIFF_FILE_MEMO: join(root, "file-memo") };
  const saved = Object.fromEntries(Object.keys(cache).map((k) => [k, Deno.env.get(k)]));
  try {
    const model = join(root, "model");
    const bytes = await writeLoadModel(model);
    const prompts = join(root, "prompts.txt");
    await Deno.writeTextFile(prompts, "What is the capital of France?\n");
    for (const [k, v] of Object.entries(cache)) Deno.env.set(k, v);
    // Stamps are only taken of settled files (lib/io/file_memo.ts): let the new model settle first.
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS + 100));
    const gb = bytes / 1e9;
    const mb = `${(gb * 1000).toFixed(0)} MB inline-weight model`;
    const rows: BenchRow[] = [];
    const startup = await seconds(() => runCapture(["--help"]));
    rows.push({ measure: "process start (capture --help)", peer: "-", value: startup, unit: "s" });
    for (const device of DEVICES) {
      const args = ["--model", model, "--prompts", prompts, "--layers", "0", "--device", device];
      const cold = await seconds(() => runCapture([...args, "--out", join(root, `cold-${device}.safetensors`)]));
      const warm = await seconds(() => runCapture([...args, "--out", join(root, `warm-${device}.safetensors`)]));
      rows.push({
        measure: `warm capture of 1 prompt (fresh process), ${mb}`,
        peer: device,
        value: warm,
        unit: "s",
        note: `cold ${cold.toFixed(2)} s`,
      });
      let handle: ModelHandle | undefined;
      const load = await seconds(async () => handle = await loadForCapture(model, [0], { device }));
      await handle?.dispose();
      rows.push({
        measure: `warm model load (identity, cache, session), ${mb}`,
        peer: device,
        value: load / gb,
        unit: "s/GB",
        note: `${load.toFixed(2)} s`,
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

/** Every end-to-end row: diff, generation (40 tokens), warm load. */
export async function endToEndRows(reps: number): Promise<BenchRow[]> {
  return [...await diffRows(reps), ...await klRows(reps), ...await generationRows(40), ...await loadRows()];
}
