/**
 * Shared test set-up: fixture models loaded once per process and backend, their weights for the f64
 * reference, and a runner for the scripts as a user would call them.
 */

import { TOKEN_TYPES } from "../lib/runtime/chat.ts";
import { ensureFixtureModel, ensureFixtureSae, fixtureModelSpec } from "../lib/fixtures/build.ts";
import { DEMO_PROMPTS } from "../lib/fixtures/prompts.ts";
import type { DiffRunOptions } from "../lib/run/diff_run.ts";
import type { DecoderConfig } from "../lib/fixtures/spec.ts";
import { fixtureWeights, type Weights } from "../lib/fixtures/weights.ts";
import type { RewriteSpec } from "../lib/graph/rewrite.ts";
import { type Device, type GraphDtype, loadModel, type ModelHandle } from "../lib/runtime/runtime.ts";

const handles = new Map<string, Promise<ModelHandle>>();

/**
 * A fixture model loaded on `device` (optionally rewritten), shared by every test in the process.
 * Checkpoint fixtures are built at `dtype`, fp32 unless a test asks (not the device's default, which
 * is fp16 on a GPU with shader-f16).
 */
export function fixtureHandle(
  name: string,
  device: Device,
  rewrite?: RewriteSpec,
  dtype: GraphDtype = "fp32",
): Promise<ModelHandle> {
  const key = `${name}@${device}/${dtype}:${JSON.stringify(rewrite ?? null)}`;
  let handle = handles.get(key);
  if (!handle) {
    handle = ensureFixtureModel(name).then((dir) => loadModel(dir, { device, dtype, rewrite }));
    handles.set(key, handle);
  }
  return handle;
}

const references = new Map<string, { config: DecoderConfig; weights: Weights }>();

/**
 * Config and weights of a fixture model, for the reference forward; drawn once per process (a few
 * seconds for a 128k vocabulary), so callers must not change them.
 */
export function fixtureReference(name: string): { config: DecoderConfig; weights: Weights } {
  let reference = references.get(name);
  if (!reference) {
    const spec = fixtureModelSpec(name);
    reference = { config: spec.config, weights: fixtureWeights(spec) };
    references.set(name, reference);
  }
  return reference;
}

/** Result of running a script. */
export interface ScriptResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `scripts/<script>` with `args` in a child Deno, as `deno task` would. */
export async function runScript(
  script: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<ScriptResult> {
  const command = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(`../scripts/${script}`, import.meta.url).pathname, ...args],
    env,
    stdout: "piped",
    stderr: "piped",
  });
  const { code, stdout, stderr } = await command.output();
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code, stdout: decode(stdout), stderr: decode(stderr) };
}

/** stderr without the harmless Mesa/XDG noise software WebGPU prints. */
export function meaningfulLines(stderr: string): string[] {
  return stderr.split("\n").filter((line) => line.trim() && !/XDG_RUNTIME_DIR|^MESA[-: ]|^libEGL warning/.test(line));
}

/** Largest |a - b| over two arrays, and the largest |b| (scale of the reference). */
export function maxDifference(a: ArrayLike<number>, b: ArrayLike<number>): { maxAbs: number; scale: number } {
  let maxAbs = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    maxAbs = Math.max(maxAbs, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return { maxAbs, scale };
}

/** Index of the largest element. */
export function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

/**
 * Largest |a - b| relative to the largest |b| over several vectors: how much two results differ as a
 * whole (e.g. that steering changed the logits). Not a tolerance check: compare with assertClose,
 * per element.
 */
export function worstRelativeError(pairs: [ArrayLike<number>, ArrayLike<number>][]): number {
  let maxAbs = 0;
  let scale = 0;
  for (const [a, b] of pairs) {
    const d = maxDifference(a, b);
    maxAbs = Math.max(maxAbs, d.maxAbs);
    scale = Math.max(scale, d.scale);
  }
  return maxAbs / scale;
}

/** Chat-formatted token ids of the demo prompts `indices` for a loaded fixture. */
export function chatIds(handle: ModelHandle, prompts: string[]): number[][] {
  return prompts.map((p) =>
    handle.tokenizer.encode(
      handle.tokenizer.apply_chat_template([{ role: "user", content: p }], {
        add_generation_prompt: true,
        tokenize: false,
      }) as string,
      { add_special_tokens: false },
    )
  );
}

/**
 * A CPU diff run over the first 11 demo prompts (batch size 4, so the last batch is partial) of the
 * Llama fixtures and their Llama Scope SAE at layer 2, writing into `outDir`.
 */
export async function fixtureDiffOptions(outDir: string): Promise<DiffRunOptions> {
  return {
    base: await ensureFixtureModel("tiny-llama-base"),
    chat: await ensureFixtureModel("tiny-llama-chat"),
    sae: await ensureFixtureSae("tiny-llama-sae-llamascope"),
    layer: 2,
    prompts: DEMO_PROMPTS.slice(0, 11),
    tokenTypes: [...TOKEN_TYPES],
    batchSize: 4,
    maxLength: 512,
    checkpointEvery: 0,
    resume: false,
    device: "cpu",
    outDir,
  };
}
