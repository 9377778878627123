/**
 * `deno task bench`: throughput of our WGSL SAE encoder against peers measured in the same run on the
 * same inputs and under the same rules (weights resident for every peer: on the GPU for ours and
 * onnxruntime-web's WebGPU MatMul, in memory for onnxruntime-node's CPU MatMul and a plain TypeScript
 * loop; inputs uploaded and outputs read back by every peer), in f32 and with f16 weights, with the
 * GPU top-k of TopK SAEs against the encode of the same rows; then the cosine kernel. Prints tables of ratios;
 * runs unchanged on a real GPU.
 */

import { CPU_ENCODE_SHAPES, cpuEncodeRows } from "../lib/bench/cpu_encode.ts";
import { endToEndRows } from "../lib/bench/end_to_end.ts";
import { formatRows } from "../lib/bench/table.ts";
import { largestConversionFixture, measureConversion } from "../lib/bench/conversion.ts";
import * as ortNode from "onnxruntime-node";
import * as ortWeb from "onnxruntime-web/webgpu";
import "../lib/runtime/runtime.ts"; // sets up onnxruntime-web's wasm paths
import { parseFlags, positiveInt } from "../lib/cli/flags.ts";
import { BENCH } from "../lib/cli/commands.ts";
import { runMain } from "../lib/cli/main.ts";
import { UserError } from "../lib/core/errors.ts";
import { SeededRandom } from "../lib/core/random.ts";
import { acquireGpu, describeGpu, type Gpu } from "../lib/backend/gpu.ts";
import { GraphBuilder } from "../lib/graph/builder.ts";
import { DataType, encodeModel } from "../lib/graph/onnx.ts";
import { cosineMatrix } from "../lib/kernels/cosine_matrix.ts";
import { GpuSaeEncoder } from "../lib/kernels/sae_encode.ts";
import { dispatch, pipeline, storageBuffer, uniformBuffer } from "../lib/kernels/shader.ts";
import type { Crosscoder, CrosscoderConfig } from "../lib/analysis/crosscoder/config.ts";
import { CrosscoderEncoder } from "../lib/analysis/crosscoder/encode.ts";
import type { Sae } from "../lib/sae/config.ts";
import { FeatureStats } from "../lib/features/stats.ts";

interface Shape {
  name: string;
  rows: number;
  dIn: number;
  dSae: number;
}

type Dtype = "f32" | "f16";

/** Row counts are a diff batch (3 token types x batch size 32) and a capture-sized one. */
const SHAPES: Record<string, Shape[]> = {
  small: [
    { name: "small", rows: 32, dIn: 512, dSae: 16384 },
    { name: "small", rows: 96, dIn: 512, dSae: 16384 },
  ],
  gemma: [{ name: "gemma-2-2b/16k", rows: 96, dIn: 2304, dSae: 16384 }],
  llama: [{ name: "llama-3.1-8b/131k", rows: 96, dIn: 4096, dSae: 131072 }],
};

async function median(reps: number, run: () => Promise<unknown>): Promise<number> {
  await run(); // warm-up: compilation, first uploads
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const start = performance.now();
    await run();
    times.push((performance.now() - start) / 1000);
  }
  return times.sort((a, b) => a - b)[Math.floor(times.length / 2)];
}

/**
 * Median seconds of each run, measured interleaved (one of each per round) so that the changing load
 * of a shared machine hits every peer alike. A run that fails is reported as "n/a (why)" instead.
 */
async function interleaved(
  reps: number,
  runs: Record<string, () => Promise<unknown>>,
): Promise<Record<string, number | string>> {
  const result: Record<string, number | string> = {};
  const times = new Map<string, number[]>();
  for (const [name, run] of Object.entries(runs)) {
    // Warm-up: compilation, first uploads.
    await run().then(() => times.set(name, []), (error) => {
      result[name] = `n/a (failed: ${String(error?.message ?? error).split("\n")[0].slice(0, 60)})`;
    });
  }
  for (let i = 0; i < reps; i++) {
    for (const [name, samples] of times) {
      const start = performance.now();
      await runs[name]();
      samples.push((performance.now() - start) / 1000);
    }
  }
  for (const [name, samples] of times) result[name] = samples.sort((a, b) => a - b)[Math.floor(samples.length / 2)];
  return result;
}

/** A MatMul graph with both operands as inputs (so a 2 GiB weight needs no protobuf initializer). */
function matmulModel(dtype: Dtype): Uint8Array {
  const elemType = dtype === "f16" ? DataType.FLOAT16 : DataType.FLOAT;
  const b = new GraphBuilder();
  const x = b.input({ name: "x", elemType, dims: ["n", "k"] });
  const w = b.input({ name: "w", elemType, dims: ["k", "m"] });
  b.output(b.op("MatMul", [x, w]), { name: "y", elemType, dims: ["n", "m"] });
  return encodeModel(b.build("matmul"));
}

/** A ReLU SAE of random weights; with f16, every weight is an f16 (as an F16 file's are). */
function randomSae(shape: Shape, dtype: Dtype): Sae {
  const r = new SeededRandom(1);
  const wEnc = r.normals(shape.dIn * shape.dSae, 1 / Math.sqrt(shape.dIn));
  if (dtype === "f16") { for (let i = 0; i < wEnc.length; i++) wEnc[i] = Math.f16round(wEnc[i]); }
  return {
    config: {
      format: "saelens",
      architecture: "relu",
      dIn: shape.dIn,
      dSae: shape.dSae,
      applyBDecToInput: false,
      source: "bench",
    },
    wEnc,
    bEnc: new Float32Array(shape.dSae),
    wDec: new Float32Array(0),
    bDec: new Float32Array(shape.dIn),
    threshold: new Float32Array(shape.dSae),
  };
}

const crosscoderBenchConfig: Omit<CrosscoderConfig, "dModel" | "dict"> = {
  layout: "dictionary_learning",
  architecture: "relu",
  codeNormalization: "crosscoder",
  alphaSae: 1,
  alphaCc: 0.1,
  source: "bench",
};

/** The f16 bits of `values`, as onnxruntime's float16 tensors take them. */
function f16Bits(values: Float32Array): Uint16Array {
  return new Uint16Array(new Float16Array(values).buffer);
}

/** y = relu(x W) for the first `cols` columns, the straightforward way. */
function typescriptEncode(x: Float32Array, w: Float32Array, shape: Shape, cols: number): Float32Array {
  const y = new Float32Array(shape.rows * cols);
  for (let r = 0; r < shape.rows; r++) {
    for (let k = 0; k < shape.dIn; k++) {
      const xv = x[r * shape.dIn + k];
      const row = k * shape.dSae;
      for (let c = 0; c < cols; c++) y[r * cols + c] += xv * w[row + c];
    }
  }
  return y.map((v) => Math.max(0, v));
}

/**
 * onnxruntime-web's MatMul with W resident on its GPU device, in column chunks that fit a storage
 * binding (as ours are: its kernels bind W whole). Returns a run function, or why it cannot run.
 */
async function ortWebPeer(
  session: ortWeb.InferenceSession,
  sae: Sae,
  x: Float32Array,
  shape: Shape,
  dtype: Dtype,
  gpu: Gpu,
): Promise<{ run: () => Promise<unknown>; free: () => void } | string> {
  const device = await ortWeb.env.webgpu.device as GPUDevice;
  const bytes = dtype === "f16" ? 2 : 4;
  const limit = Math.min(device.limits.maxStorageBufferBindingSize, gpu.maxBufferSize);
  const perChunk = Math.floor(limit / (shape.dIn * bytes) / 64) * 64;
  if (perChunk === 0) return "n/a (a row of W exceeds a binding)";
  const type = dtype === "f16" ? "float16" : "float32";
  const chunks: { buffer: GPUBuffer; tensor: ortWeb.Tensor }[] = [];
  for (let offset = 0; offset < shape.dSae; offset += perChunk) {
    const cols = Math.min(perChunk, shape.dSae - offset);
    const block = dtype === "f16" ? new Float16Array(shape.dIn * cols) : new Float32Array(shape.dIn * cols);
    for (let i = 0; i < shape.dIn; i++) {
      block.set(sae.wEnc.subarray(i * shape.dSae + offset, i * shape.dSae + offset + cols), i * cols);
    }
    const size = Math.ceil(block.byteLength / 16) * 16;
    const buffer = device.createBuffer({
      size,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    });
    device.queue.writeBuffer(buffer, 0, block.buffer, 0, block.byteLength);
    chunks.push({ buffer, tensor: ortWeb.Tensor.fromGpuBuffer(buffer, { dataType: type, dims: [shape.dIn, cols] }) });
  }
  return {
    run: async () => {
      for (const chunk of chunks) {
        const input = dtype === "f16"
          ? new ortWeb.Tensor(type, f16Bits(x), [shape.rows, shape.dIn])
          : new ortWeb.Tensor(type, x, [shape.rows, shape.dIn]);
        await session.run({ x: input, w: chunk.tensor });
      }
    },
    free: () => chunks.forEach((chunk) => chunk.buffer.destroy()),
  };
}

/**
 * The GPU top-k of `rows` x `cols` random pre-activations as a timed run (each run first restores
 * them by a copy, which the time includes).
 */
function topKRun(gpu: Gpu, rows: number, cols: number, k: number): { run: () => Promise<unknown>; free: () => void } {
  const values = new SeededRandom(4).normals(rows * cols);
  const pristine = storageBuffer(gpu, values, true);
  const work = storageBuffer(gpu, values.byteLength, true);
  const params = uniformBuffer(gpu, [rows, cols, k, 0]);
  return {
    run: async () => {
      const encoder = gpu.device.createCommandEncoder();
      encoder.copyBufferToBuffer(pristine, 0, work, 0, values.byteLength);
      dispatch(gpu, encoder, await pipeline(gpu, "top_k"), [work, params], [rows, 1]);
      gpu.device.queue.submit([encoder.finish()]);
      await gpu.device.queue.onSubmittedWorkDone();
    },
    free: () => [pristine, work, params].forEach((buffer) => buffer.destroy()),
  };
}

function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join(" | ");
  console.log(line(header));
  console.log(widths.map((w) => "-".repeat(w)).join("-|-"));
  for (const row of rows) console.log(line(row));
}

/**
 * Checkpoint conversion (lib/models/from_checkpoint.ts) of `checkpoint`, or of the largest F16/BF16
 * fixture: throughput and peak RSS, measured in a child process so the memory is the conversion's.
 */
async function conversionReport(checkpoint: string | undefined): Promise<void> {
  const dir = checkpoint ?? await largestConversionFixture();
  if (!(await Deno.stat(dir).then((s) => s.isDirectory, () => false))) {
    throw new UserError(`--checkpoint ${dir} is not a directory: pass a Hugging Face checkpoint directory`);
  }
  const m = await measureConversion(dir);
  const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;
  console.log(`checkpoint conversion of ${m.checkpoint} (child process, fresh cache root)`);
  console.log(
    `  converted ${mb(m.inputBytes)} as stored -> ${mb(m.outputBytes)} in ${m.seconds.toFixed(2)} s: ${
      (m.inputBytes / 1e6 / m.seconds).toFixed(1)
    } MB/s read, ${(m.outputBytes / 1e6 / m.seconds).toFixed(1)} MB/s written (identity hash and graph included)`,
  );
  console.log(
    `  peak RSS ${mb(m.peakRss)}: ${mb(m.peakRss - m.baselineRss)} above the process's ${
      mb(m.baselineRss)
    } before converting; largest tensor ${mb(m.largestTensor)} as stored`,
  );
}

/** The CPU-encode rows' shapes for the kernel table's shape names. */
function cpuEncodeShapes(names: string[]) {
  const byName: Record<string, string> = { small: "small", gemma: "gemma-2-2b/16k", llama: "llama-8b/131k" };
  return [...CPU_ENCODE_SHAPES.small, ...CPU_ENCODE_SHAPES.realistic].filter((s) =>
    names.some((n) => byName[n] === s.name)
  );
}

await runMain(async () => {
  const { values } = parseFlags(Deno.args, BENCH);
  const names = values.shapes === "all" ? Object.keys(SHAPES) : values.shapes!.split(",");
  const shapes = names.flatMap((name) => {
    if (!SHAPES[name]) throw new UserError(`unknown --shapes "${name}": use ${Object.keys(SHAPES).join(", ")} or all`);
    return SHAPES[name];
  });
  const reps = positiveInt("reps", values.reps, 3);
  if (values.convert || values.checkpoint) return await conversionReport(values.checkpoint);
  if (values.only !== undefined && !["kernels", "cpu-encode", "end-to-end"].includes(values.only)) {
    throw new UserError(`unknown --only "${values.only}": use kernels, cpu-encode or end-to-end`);
  }
  const cpuEncode = async () =>
    console.log(`\n${formatRows("CPU encode", await cpuEncodeRows(cpuEncodeShapes(names), reps), "ORT-node MatMul")}`);
  const endToEnd = async () => console.log(`\n${formatRows("end to end", await endToEndRows(reps), "webgpu")}`);
  if (values.only === "cpu-encode") return await cpuEncode();
  if (values.only === "end-to-end") return await endToEnd();
  const gpu = await acquireGpu();
  console.log(`${new Date().toISOString().slice(0, 10)}; ${describeGpu(gpu)}`);
  const sessions = {
    node: {} as Partial<Record<Dtype, ortNode.InferenceSession | string>>,
    web: {} as Partial<Record<Dtype, ortWeb.InferenceSession>>,
  };
  for (const dtype of ["f32", "f16"] as const) {
    sessions.node[dtype] = await ortNode.InferenceSession.create(matmulModel(dtype)).catch(() =>
      "n/a (no f16 MatMul on CPU)"
    );
    sessions.web[dtype] = await ortWeb.InferenceSession.create(matmulModel(dtype), { executionProviders: ["webgpu"] });
  }
  const table: string[][] = [];
  for (const shape of shapes) {
    for (const dtype of ["f32", "f16"] as const) {
      const flop = 2 * shape.rows * shape.dIn * shape.dSae;
      const sae = randomSae(shape, dtype);
      const x = new SeededRandom(2).normals(shape.rows * shape.dIn);
      const encoder = await GpuSaeEncoder.create(gpu, sae);
      if (encoder.weightType !== dtype) throw new Error(`expected ${dtype} weights, got ${encoder.weightType}`);
      const stats = FeatureStats.empty(["a", "b", "c"], shape.dSae);
      const rowType = Uint32Array.from({ length: shape.rows }, (_, i) => i % 3);
      const runs: Record<string, () => Promise<unknown>> = {
        ours: () => encoder.encode(x, shape.rows),
        fused: () => encoder.encodeInto(x, shape.rows, rowType, stats),
      };
      const web = await ortWebPeer(sessions.web[dtype]!, sae, x, shape, dtype, gpu);
      if (typeof web !== "string") runs.web = web.run;
      const node = sessions.node[dtype]!;
      if (typeof node !== "string") {
        const tensor = (values: Float32Array, dims: number[]) =>
          dtype === "f16" ? new ortNode.Tensor("float16", f16Bits(values), dims) : new ortNode.Tensor(values, dims);
        const feeds = { x: tensor(x, [shape.rows, shape.dIn]), w: tensor(sae.wEnc, [shape.dIn, shape.dSae]) };
        runs.node = () => node.run(feeds);
      }
      // The TS loop runs on the first 4096 features; its time is scaled to the whole shape.
      const tsCols = Math.min(shape.dSae, 4096);
      if (dtype === "f32") runs.ts = () => Promise.resolve(typescriptEncode(x, sae.wEnc, shape, tsCols));
      // TopK SAEs add a top-k over each row (k = 64 here) to the encode.
      const topk = topKRun(gpu, shape.rows, shape.dSae, 64);
      runs.topk = topk.run;
      const seconds = await interleaved(reps, runs);
      encoder.destroy();
      topk.free();
      if (typeof web !== "string") web.free();
      const ours = seconds.ours as number;
      const rate = (t: number) => flop / t / 1e9;
      const cell = (peer: number | string | undefined, scale = 1) =>
        typeof peer === "number"
          ? `${rate(peer * scale).toFixed(2)} (x${(peer * scale / ours).toFixed(2)})`
          : peer ?? "-";
      table.push([
        `${shape.name} ${shape.rows}x${shape.dIn}x${shape.dSae}`,
        dtype,
        rate(ours).toFixed(2),
        typeof seconds.fused === "number" ? rate(seconds.fused).toFixed(2) : seconds.fused,
        typeof web === "string" ? web : cell(seconds.web),
        typeof node === "string" ? node : cell(seconds.node),
        cell(seconds.ts, shape.dSae / tsCols),
        typeof seconds.topk === "number"
          ? `${(seconds.topk * 1000).toFixed(0)} ms = ${(100 * seconds.topk / ours).toFixed(1)} %`
          : seconds.topk,
      ]);
      console.error(`done ${shape.name} ${shape.rows} rows ${dtype}`);
    }
  }
  printTable([
    "shape (rows x d_in x d_sae)",
    "weights",
    "ours: encode GFLOP/s",
    "encode+stats",
    "ORT-web WebGPU MatMul (ours/it)",
    "ORT-node CPU MatMul (ours/it)",
    "TS loop (ours/it)",
    "top-k: ms, % of encode",
  ], table);
  console.log(
    "all peers: weights resident (ours and ORT-web on the GPU, in column chunks under the binding limit), " +
      "input uploaded and all outputs read back each run; ours adds bias and ReLU. f16: f16 weights (ORT: f16 " +
      "inputs and outputs too). The TS loop runs on the first 4096 features.",
  );
  // The cosine kernel at the sweep's size (six prompts each side) and a larger one.
  for (const [n, d] of [[6, 4096], [256, 4096]]) {
    const r = new SeededRandom(3);
    const a = r.normals(n * d);
    const b = r.normals(n * d);
    const t = await median(reps, () => cosineMatrix(gpu, a, n, b, n, d));
    console.log(`cosine_matrix ${n}x${n}x${d} (3 matrices + reductions): ${(t * 1000).toFixed(1)} ms`);
  }
  // A crosscoder of two 256-wide models is the SAE encode of their 512-wide concatenation plus the host's pairing.
  const [ccRows, d, dict] = [256, 256, 16384];
  const cr = new SeededRandom(4);
  const cc: Crosscoder = {
    config: { ...crosscoderBenchConfig, dModel: d, dict },
    wEnc: cr.normals(2 * d * dict, 1 / Math.sqrt(2 * d)),
    bEnc: new Float32Array(dict),
    wDec: new Float32Array(2 * dict * d),
    bDec: new Float32Array(2 * d),
  };
  const [xBase, xChat] = [cr.normals(ccRows * d), cr.normals(ccRows * d)];
  const ccEncoder = await CrosscoderEncoder.create(gpu, cc);
  const ccTime = await median(reps, () => ccEncoder.encode(xBase, xChat, ccRows));
  ccEncoder.destroy();
  const ccRate = (2 * ccRows * 2 * d * dict) / ccTime / 1e9;
  console.log(
    `crosscoder encode ${ccRows}x(2x${d})x${dict} (pairing included; the SAE row 256x512x16384 is the same matmul): ${
      ccRate.toFixed(2)
    } GFLOP/s`,
  );
  await cpuEncode();
  if (values.only !== "kernels") await endToEnd();
});
