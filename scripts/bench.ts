/**
 * `deno task bench`: throughput of our WGSL SAE encoder against peers measured in the same run on the
 * same inputs (onnxruntime-node's CPU MatMul, onnxruntime-web's own WebGPU MatMul, a plain TypeScript
 * loop), plus the statistics and cosine kernels. Prints one table; runs unchanged on a real GPU.
 */

import * as ortNode from "onnxruntime-node";
import * as ortWeb from "onnxruntime-web/webgpu";
import "../lib/runtime.ts"; // sets up onnxruntime-web's wasm paths
import { parseFlags } from "../lib/cli.ts";
import { BENCH } from "../lib/commands.ts";
import { runMain, UserError } from "../lib/errors.ts";
import { SeededRandom } from "../lib/random.ts";
import { acquireGpu, describeGpu } from "../lib/gpu.ts";
import { GraphBuilder } from "../lib/graph/builder.ts";
import { DataType, encodeModel } from "../lib/graph/onnx.ts";
import { cosineMatrix } from "../lib/kernels/cosine_matrix.ts";
import { SaeEncoder } from "../lib/kernels/sae_encode.ts";
import type { Crosscoder, CrosscoderConfig } from "../lib/crosscoder/config.ts";
import { CrosscoderEncoder } from "../lib/crosscoder/encode.ts";
import type { Sae } from "../lib/sae/config.ts";
import { FeatureStats } from "../lib/stats.ts";
import { largestConversionFixture, measureConversion } from "../lib/bench/conversion.ts";

interface Shape {
  name: string;
  rows: number;
  dIn: number;
  dSae: number;
}

const SHAPES: Record<string, Shape[]> = {
  small: [
    { name: "small", rows: 32, dIn: 512, dSae: 16384 },
    { name: "small", rows: 256, dIn: 512, dSae: 16384 },
  ],
  realistic: [{ name: "llama-8b/131k", rows: 32, dIn: 4096, dSae: 131072 }],
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

/** A MatMul graph with both operands as inputs (so a 2 GiB weight needs no protobuf initializer). */
function matmulModel(): Uint8Array {
  const b = new GraphBuilder();
  const x = b.input({ name: "x", elemType: DataType.FLOAT, dims: ["n", "k"] });
  const w = b.input({ name: "w", elemType: DataType.FLOAT, dims: ["k", "m"] });
  b.output(b.op("MatMul", [x, w]), { name: "y", elemType: DataType.FLOAT, dims: ["n", "m"] });
  return encodeModel(b.build("matmul"));
}

function randomSae(shape: Shape): Sae {
  const r = new SeededRandom(1);
  return {
    config: {
      format: "saelens",
      architecture: "relu",
      dIn: shape.dIn,
      dSae: shape.dSae,
      applyBDecToInput: false,
      source: "bench",
    },
    wEnc: r.normals(shape.dIn * shape.dSae, 1 / Math.sqrt(shape.dIn)),
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

/** y = relu(x W) for `cols` columns, the straightforward way. */
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

await runMain(async () => {
  const { values } = parseFlags(Deno.args, BENCH);
  if (values.convert || values.checkpoint) return await conversionReport(values.checkpoint);
  const shapes = values.shapes === "all" ? [...SHAPES.small, ...SHAPES.realistic] : SHAPES[values.shapes!];
  if (!shapes) throw new UserError(`unknown --shapes "${values.shapes}": use small, realistic or all`);
  const reps = Math.max(1, Number(values.reps));
  const gpu = await acquireGpu();
  console.log(describeGpu(gpu));
  const model = matmulModel();
  const cpuSession = await ortNode.InferenceSession.create(model);
  const webSession = await ortWeb.InferenceSession.create(model, { executionProviders: ["webgpu"] });
  const rows: string[][] = [];
  for (const shape of shapes) {
    const flop = 2 * shape.rows * shape.dIn * shape.dSae;
    const gflops = (seconds: number, f = flop) => f / seconds / 1e9;
    const sae = randomSae(shape);
    const x = new SeededRandom(2).normals(shape.rows * shape.dIn);
    const encoder = await SaeEncoder.create(gpu, sae);
    const ours = await median(reps, () => encoder.encode(x, shape.rows));
    const stats = FeatureStats.empty(["a", "b", "c"], shape.dSae);
    const rowType = Uint32Array.from({ length: shape.rows }, (_, i) => i % 3);
    const fused = await median(reps, () => encoder.encodeInto(x, shape.rows, rowType, stats));
    encoder.destroy();
    const xs = new ortNode.Tensor("float32", x, [shape.rows, shape.dIn]);
    const ws = new ortNode.Tensor("float32", sae.wEnc, [shape.dIn, shape.dSae]);
    const cpu = await median(reps, () => cpuSession.run({ x: xs, w: ws }));
    let web = NaN;
    if (shape.dIn * shape.dSae * 4 <= gpu.maxBufferSize) {
      const xw = new ortWeb.Tensor("float32", x, [shape.rows, shape.dIn]);
      const ww = new ortWeb.Tensor("float32", sae.wEnc, [shape.dIn, shape.dSae]);
      web = await median(reps, () => webSession.run({ x: xw, w: ww }));
    }
    const tsCols = Math.min(shape.dSae, 4096);
    const ts = await median(1, () => Promise.resolve(typescriptEncode(x, sae.wEnc, shape, tsCols)));
    const tsRate = gflops(ts, 2 * shape.rows * shape.dIn * tsCols);
    rows.push([
      `${shape.name} ${shape.rows}x${shape.dIn}x${shape.dSae}`,
      gflops(ours).toFixed(2),
      gflops(fused).toFixed(2),
      gflops(cpu).toFixed(2),
      (gflops(ours) / gflops(cpu)).toFixed(3),
      Number.isNaN(web)
        ? "n/a (> maxBufferSize)"
        : `${gflops(web).toFixed(2)} (x${(gflops(ours) / gflops(web)).toFixed(2)})`,
      `${tsRate.toFixed(2)} (x${(gflops(ours) / tsRate).toFixed(1)})`,
    ]);
    console.error(`done ${shape.name} ${shape.rows} rows`);
  }
  // The cosine kernel at the sweep's size (six prompts each side) and a larger one.
  const cosineRows: string[] = [];
  for (const [n, d] of [[6, 4096], [256, 4096]]) {
    const r = new SeededRandom(3);
    const a = r.normals(n * d);
    const b = r.normals(n * d);
    const t = await median(reps, () => cosineMatrix(gpu, a, n, b, n, d));
    cosineRows.push(`cosine_matrix ${n}x${n}x${d} (3 matrices + reductions): ${(t * 1000).toFixed(1)} ms`);
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
  const header = [
    "shape (rows x d_in x d_sae)",
    "encode GFLOP/s",
    "encode+stats GFLOP/s",
    "ORT-node CPU GFLOP/s",
    "ours/ORT-node",
    "ORT-web WebGPU GFLOP/s (ours/it)",
    "TS loop GFLOP/s (ours/it)",
  ];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join(" | ");
  console.log(line(header));
  console.log(widths.map((w) => "-".repeat(w)).join("-|-"));
  for (const row of rows) console.log(line(row));
  for (const row of cosineRows) console.log(row);
  console.log(
    `crosscoder encode ${ccRows}x(2x${d})x${dict} (pairing included; the SAE row 256x512x16384 is the same matmul): ${
      ccRate.toFixed(2)
    } GFLOP/s`,
  );
  console.log("encode times include the input upload and the read-back of all activations; weights are resident.");
  console.log("the TS loop runs on the first 4096 features; its rate is compared.");
});
