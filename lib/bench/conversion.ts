/**
 * What converting a checkpoint costs: throughput and peak resident memory of
 * {@linkcode modelDirFromCheckpoint} on a checkpoint, into a fresh cache root, measured in a child
 * process so the memory figure is the conversion's own and not the benchmark's. The conversion reads
 * one tensor at a time, so its working set should be the process's baseline plus about the largest
 * tensor as stored and as converted, never the model.
 *
 * @module
 */

import { join } from "node:path";
import { openCheckpoint } from "../models/checkpoint.ts";
import { dirSource } from "../io/fs_source.ts";
import { ensureFixtureModel } from "../fixtures/build.ts";
import { FIXTURE_MODELS } from "../fixtures/spec.ts";
import { modelDirFromCheckpoint } from "../models/from_checkpoint.ts";
import { UserError } from "../core/errors.ts";

/** One conversion, as the child measured it. */
export interface ConversionMeasurement {
  checkpoint: string;
  /** Bytes of the tensors that needed converting, as stored, and what was written for them. */
  inputBytes: number;
  outputBytes: number;
  /** Wall time of modelDirFromCheckpoint (identity, conversion, graph), seconds. */
  seconds: number;
  /** Resident memory just before the conversion, and its peak during it (bytes). */
  baselineRss: number;
  peakRss: number;
  /** The largest converted tensor, as stored (bytes). */
  largestTensor: number;
}

/** The fixture checkpoint with the most bytes to convert (F16/BF16), generated if missing. */
export async function largestConversionFixture(): Promise<string> {
  let best = { dir: "", bytes: -1 };
  for (const spec of FIXTURE_MODELS.filter((m) => m.checkpoint && m.checkpoint.dtype !== "F32")) {
    const dir = await ensureFixtureModel(spec.name);
    const bytes = await convertedBytes(dir);
    if (bytes > best.bytes) best = { dir, bytes };
  }
  return best.dir;
}

async function convertedBytes(dir: string): Promise<number> {
  const { tensors } = await openCheckpoint(dirSource(dir));
  return [...tensors.values()].filter((t) => t.dtype !== "F32").reduce((n, t) => n + t.length, 0);
}

/** A field of /proc/self/status in bytes (Linux); undefined elsewhere. */
function procStatus(field: "VmRSS" | "VmHWM"): number | undefined {
  const status = (() => {
    try {
      return Deno.readTextFileSync("/proc/self/status");
    } catch {
      return "";
    }
  })();
  const kb = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1];
  return kb === undefined ? undefined : Number(kb) * 1024;
}

/** Converts `dir` into a fresh cache root in a child Deno and returns what it measured. */
export async function measureConversion(dir: string): Promise<ConversionMeasurement> {
  const root = await Deno.makeTempDir({ prefix: "model-diff-convert-bench-" });
  try {
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL(import.meta.url).pathname, dir],
      env: { MODEL_DIFF_CHECKPOINT_CACHE: join(root, "checkpoints"), MODEL_DIFF_CACHE: join(root, "rewritten") },
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (code !== 0) throw new Error(`the conversion child failed: ${new TextDecoder().decode(stderr).trim()}`);
    return JSON.parse(new TextDecoder().decode(stdout));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

/**
 * The conversion report of `deno task bench --convert`: {@linkcode measureConversion} of `checkpoint`,
 * or of the largest F16/BF16 fixture, as lines to print.
 */
export async function conversionReport(checkpoint: string | undefined): Promise<string[]> {
  const dir = checkpoint ?? await largestConversionFixture();
  if (!(await Deno.stat(dir).then((s) => s.isDirectory, () => false))) {
    throw new UserError(`--checkpoint ${dir} is not a directory: pass a Hugging Face checkpoint directory`);
  }
  const m = await measureConversion(dir);
  const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;
  const rate = (bytes: number) => `${(bytes / 1e6 / m.seconds).toFixed(1)} MB/s`;
  return [
    `checkpoint conversion of ${m.checkpoint} (child process, fresh cache root)`,
    `  converted ${mb(m.inputBytes)} as stored -> ${mb(m.outputBytes)} in ${m.seconds.toFixed(2)} s: ${
      rate(m.inputBytes)
    } read, ${rate(m.outputBytes)} written (identity hash and graph included)`,
    `  peak RSS ${mb(m.peakRss)}: ${mb(m.peakRss - m.baselineRss)} above the process's ${
      mb(m.baselineRss)
    } before converting; largest tensor ${mb(m.largestTensor)} as stored`,
  ];
}

/** The child: converts the checkpoint named by its argument and prints the measurement as JSON. */
async function child(dir: string): Promise<void> {
  const checkpoint = await openCheckpoint(dirSource(dir));
  const converted = [...checkpoint.tensors.values()].filter((t) => t.dtype !== "F32");
  // Start the peak over (Linux: "5" resets VmHWM), so module loading does not count.
  try {
    Deno.writeTextFileSync("/proc/self/clear_refs", "5");
  } catch { /* older kernels: the peak then includes start-up, an over-estimate */ }
  const baselineRss = procStatus("VmRSS") ?? Deno.memoryUsage().rss;
  const start = performance.now();
  const built = await modelDirFromCheckpoint(dir);
  const seconds = (performance.now() - start) / 1000;
  const peakRss = procStatus("VmHWM") ?? Deno.memoryUsage().rss;
  // What the conversion wrote: the onnx directory less the graph and the links to the checkpoint's files.
  let outputBytes = 0;
  for await (const item of Deno.readDir(join(built, "onnx"))) {
    if (item.name === "model.onnx" || item.name.endsWith(".safetensors")) continue;
    outputBytes += (await Deno.stat(join(built, "onnx", item.name))).size;
  }
  const measurement: ConversionMeasurement = {
    checkpoint: dir,
    inputBytes: converted.reduce((n, t) => n + t.length, 0),
    outputBytes,
    seconds,
    baselineRss,
    peakRss,
    largestTensor: Math.max(0, ...converted.map((t) => t.length)),
  };
  console.log(JSON.stringify(measurement));
}

if (import.meta.main) await child(Deno.args[0]);
