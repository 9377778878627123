/**
 * Shared test set-up: fixture models loaded once per process and backend, their weights for the f64
 * reference, and a runner for the scripts as a user would call them.
 */

import { ensureFixtureModel, fixtureModelSpec } from "../lib/fixtures/build.ts";
import type { DecoderConfig } from "../lib/fixtures/spec.ts";
import { fixtureWeights, type Weights } from "../lib/fixtures/weights.ts";
import { type Device, loadModel, type ModelHandle } from "../lib/runtime.ts";

const handles = new Map<string, Promise<ModelHandle>>();

/** A fixture model loaded on `device`, shared by every test in the process. */
export function fixtureHandle(name: string, device: Device): Promise<ModelHandle> {
  const key = `${name}@${device}`;
  let handle = handles.get(key);
  if (!handle) {
    handle = ensureFixtureModel(name).then((dir) => loadModel(dir, { device }));
    handles.set(key, handle);
  }
  return handle;
}

/** Config and weights of a fixture model, for the reference forward. */
export function fixtureReference(name: string): { config: DecoderConfig; weights: Weights } {
  const spec = fixtureModelSpec(name);
  return { config: spec.config, weights: fixtureWeights(spec) };
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
