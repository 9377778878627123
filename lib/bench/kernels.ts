/**
 * The WebGPU kernel sections of `deno task bench`: our SAE encoder against peers measured in the same
 * run on the same inputs and under the same rules (weights resident for every peer: on the GPU for
 * ours and onnxruntime-web's WebGPU MatMul, both in the column chunks of the encoder's own
 * {@linkcode wEncChunks}; in memory for onnxruntime-node's CPU MatMul and a plain TypeScript loop;
 * inputs uploaded and outputs read back by every peer), in f32 and with f16 weights, with the GPU
 * top-k of TopK SAEs beside the encode of the same rows; then the cosine and crosscoder kernels, each
 * against the path the toolkit would take without them.
 *
 * @module
 */

import * as ortNode from "onnxruntime-node";
import type { Crosscoder } from "../analysis/crosscoder/config.ts";
import { CrosscoderEncoder, crosscoderSae, pairRows } from "../analysis/crosscoder/encode.ts";
import type { Gpu } from "../backend/gpu.ts";
import { cosineMatrix } from "../kernels/cosine_matrix.ts";
import { GpuSaeEncoder, wEncChunks } from "../kernels/sae_encode.ts";
import { dispatch, pipeline, storageBuffer, uniformBuffer } from "../kernels/shader.ts";
import { ortWeb } from "../backend/ort_web.ts";
import { SeededRandom } from "../core/random.ts";
import type { Sae } from "../sae/config.ts";
import { FeatureStats } from "../features/stats.ts";
import { type Dtype, type EncodeShape, f16Bits, matmulModel, randomSae, roundToF16, shapeLabel } from "./matmul.ts";
import {
  type BenchRow,
  type BenchSection,
  interleavedMedians,
  medianSeconds,
  type Run,
  settledMedians,
} from "./table.ts";

/** The peers' names, as the rows show them. */
const PEER = {
  web: "ORT-web WebGPU MatMul",
  ours: "ours: encode",
  fused: "ours: encode + statistics",
  node: "ORT-node CPU MatMul",
  ts: "TS loop (first 4096 features, scaled)",
  topk: "ours: top-k (k = 64)",
} as const;

/** The TypeScript loop runs on this many features and its time is scaled to the shape's. */
const TS_COLUMNS = 4096;

/** A peer that holds GPU buffers until freed. */
interface HeldRun {
  run: Run;
  free: () => void;
}

/** y = relu(x W) for the first `cols` columns, the straightforward way. */
function typescriptEncode(x: Float32Array, w: Float32Array, shape: EncodeShape, cols: number): Float32Array {
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
 * onnxruntime-web's MatMul with W resident on the shared device, in the encoder's column chunks
 * (unpadded): its kernels bind W whole, so it needs the same split under the binding limit as ours.
 */
function ortWebPeer(session: ortWeb.InferenceSession, gpu: Gpu, sae: Sae, x: Float32Array, dtype: Dtype): HeldRun {
  const { dIn } = sae.config;
  const rows = x.length / dIn;
  const type = dtype === "f16" ? "float16" : "float32";
  const limitBytes = Math.min(gpu.maxStorageBufferBindingSize, gpu.maxBufferSize);
  const layout = { weightType: dtype, limitBytes, rows: dIn, columnMultiple: 1 };
  const chunks = Array.from(wEncChunks(sae, layout), ({ cols, block }) => {
    const buffer = storageBuffer(gpu, block, true);
    return { buffer, tensor: ortWeb.Tensor.fromGpuBuffer(buffer, { dataType: type, dims: [dIn, cols] }) };
  });
  return {
    run: async () => {
      for (const chunk of chunks) {
        const input = dtype === "f16"
          ? new ortWeb.Tensor(type, f16Bits(x), [rows, dIn])
          : new ortWeb.Tensor(type, x, [rows, dIn]);
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
function topKRun(gpu: Gpu, rows: number, cols: number, k: number): HeldRun {
  const values = new SeededRandom(4).normals(rows * cols);
  const pristine = storageBuffer(gpu, values, true);
  const work = storageBuffer(gpu, values.byteLength, true);
  const params = uniformBuffer(gpu, [rows, cols, k, 0]);
  return {
    run: async () => {
      const commands = gpu.device.createCommandEncoder();
      commands.copyBufferToBuffer(pristine, 0, work, 0, values.byteLength);
      dispatch(gpu, commands, await pipeline(gpu, "top_k"), [work, params], [rows, 1]);
      gpu.device.queue.submit([commands.finish()]);
      await gpu.device.queue.onSubmittedWorkDone();
    },
    free: () => [pristine, work, params].forEach((buffer) => buffer.destroy()),
  };
}

/** The MatMul sessions of both runtimes per weight type; a runtime that cannot make one is skipped. */
async function matmulSessions(dtypes: Dtype[], skipped: string[]) {
  const web = new Map<Dtype, ortWeb.InferenceSession>();
  const node = new Map<Dtype, ortNode.InferenceSession>();
  for (const dtype of dtypes) {
    web.set(dtype, await ortWeb.InferenceSession.create(matmulModel(dtype), { executionProviders: ["webgpu"] }));
    await ortNode.InferenceSession.create(matmulModel(dtype)).then(
      (session) => node.set(dtype, session),
      () => skipped.push(`${PEER.node} ${dtype}: no ${dtype} MatMul session on the CPU`),
    );
  }
  return { web, node };
}

/**
 * Every peer of the encode at each shape, in f32 and (where the adapter has shader-f16, which
 * onnxruntime-web's f16 MatMul needs) with f16 weights, in GFLOP/s of the matmul, against
 * onnxruntime-web's WebGPU MatMul; top-k in ms beside them. `log` hears of each shape done.
 */
export async function kernelSection(
  gpu: Gpu,
  shapes: EncodeShape[],
  reps: number,
  log: (line: string) => void = () => {},
): Promise<BenchSection> {
  const skipped: string[] = [];
  const dtypes: Dtype[] = gpu.hasF16 ? ["f32", "f16"] : ["f32"];
  if (!gpu.hasF16) skipped.push("f16 weights: the adapter lacks shader-f16");
  const sessions = await matmulSessions(dtypes, skipped);
  const rows: BenchRow[] = [];
  for (const shape of shapes) {
    const sae = randomSae(shape);
    for (const dtype of dtypes) {
      if (dtype === "f16") roundToF16(sae);
      const x = new SeededRandom(2).normals(shape.rows * shape.dIn);
      const encoder = await GpuSaeEncoder.create(gpu, sae);
      if (encoder.weightType !== dtype) throw new Error(`expected ${dtype} weights, got ${encoder.weightType}`);
      const stats = FeatureStats.empty(["a", "b", "c"], shape.dSae);
      const rowType = Uint32Array.from({ length: shape.rows }, (_, i) => i % 3);
      const web = ortWebPeer(sessions.web.get(dtype)!, gpu, sae, x, dtype);
      // TopK SAEs add a top-k over each row (k = 64 here) to the encode.
      const topk = topKRun(gpu, shape.rows, shape.dSae, 64);
      const runs: Record<string, Run> = {
        [PEER.web]: web.run,
        [PEER.ours]: () => encoder.encode(x, shape.rows),
        [PEER.fused]: () => encoder.encodeInto(x, shape.rows, rowType, stats),
      };
      const node = sessions.node.get(dtype);
      if (node) {
        const tensor = (values: Float32Array, dims: number[]) =>
          dtype === "f16" ? new ortNode.Tensor("float16", f16Bits(values), dims) : new ortNode.Tensor(values, dims);
        const feeds = { x: tensor(x, [shape.rows, shape.dIn]), w: tensor(sae.wEnc, [shape.dIn, shape.dSae]) };
        runs[PEER.node] = () => node.run(feeds);
      }
      const tsCols = Math.min(shape.dSae, TS_COLUMNS);
      if (dtype === "f32") runs[PEER.ts] = () => Promise.resolve(typescriptEncode(x, sae.wEnc, shape, tsCols));
      runs[PEER.topk] = topk.run;
      const { seconds, failed } = await settledMedians(reps, runs);
      encoder.destroy();
      web.free();
      topk.free();
      const measure = `${shapeLabel(shape)} ${dtype}`;
      const flop = 2 * shape.rows * shape.dIn * shape.dSae;
      for (const [peer, t] of Object.entries(seconds)) {
        if (peer === PEER.topk) {
          const share = seconds[PEER.ours] ? `${(100 * t / seconds[PEER.ours]).toFixed(1)} % of the encode` : "";
          rows.push({ measure, peer, value: t * 1000, unit: "ms", note: share });
        } else {
          const scaled = peer === PEER.ts ? t * shape.dSae / tsCols : t;
          rows.push({ measure, peer, value: flop / scaled / 1e9, unit: "GFLOP/s" });
        }
      }
      for (const [peer, why] of Object.entries(failed)) skipped.push(`${measure} ${peer}: failed (${why})`);
      log(`done ${measure}`);
    }
  }
  await Promise.all([...sessions.web.values(), ...sessions.node.values()].map((s) => s.release()));
  return {
    title: "WebGPU encode",
    versus: PEER.web,
    rows,
    skipped,
    rules: "weights resident (ours and ORT-web on the GPU, in the encoder's column chunks under the binding " +
      "limit), input uploaded and all outputs read back each run; ours adds bias and ReLU. f16: f16 weights " +
      "(ORT: f16 inputs and outputs too).",
  };
}

/** Sizes of {@linkcode otherKernelSections}. */
export interface OtherKernelSizes {
  /** [n, d] of each cosine measure: n rows a side, d wide. */
  cosine: [number, number][];
  /** Crosscoder rows, d_model of each model, dictionary size. */
  crosscoder: { rows: number; dModel: number; dict: number };
}

/**
 * The cosine kernel (the sweep's three matrices and reductions) against the sweep's own CPU path, and
 * the crosscoder encode (pairing included) against our SAE encode of the already paired rows.
 */
export async function otherKernelSections(gpu: Gpu, sizes: OtherKernelSizes, reps: number): Promise<BenchSection[]> {
  const cosine: BenchSection = { title: "cosine", versus: "CPU (the sweep's host path)", rows: [] };
  for (const [n, d] of sizes.cosine) {
    const r = new SeededRandom(3);
    const [a, b] = [r.normals(n * d), r.normals(n * d)];
    const measure = `cosine_matrix ${n}x${n}x${d} (3 matrices + reductions)`;
    for (const [peer, device] of [[cosine.versus, undefined], ["ours", gpu]] as const) {
      const t = await medianSeconds(reps, () => cosineMatrix(device, a, n, b, n, d));
      cosine.rows.push({ measure, peer, value: t * 1000, unit: "ms" });
    }
  }
  const { rows, dModel, dict } = sizes.crosscoder;
  const random = new SeededRandom(4);
  const cc: Crosscoder = {
    config: {
      layout: "dictionary_learning",
      architecture: "relu",
      codeNormalization: "crosscoder",
      alphaSae: 1,
      alphaCc: 0.1,
      source: "bench",
      dModel,
      dict,
    },
    wEnc: random.normals(2 * dModel * dict, 1 / Math.sqrt(2 * dModel)),
    bEnc: new Float32Array(dict),
    wDec: new Float32Array(2 * dict * dModel),
    bDec: new Float32Array(2 * dModel),
  };
  const [xBase, xChat] = [random.normals(rows * dModel), random.normals(rows * dModel)];
  const paired = pairRows(xBase, xChat, rows, dModel);
  const ccEncoder = await CrosscoderEncoder.create(gpu, cc);
  const saeEncoder = await GpuSaeEncoder.create(gpu, crosscoderSae(cc));
  const peers = ["ours: SAE encode of the paired rows", "ours: crosscoder encode (pairing included)"];
  const seconds = await interleavedMedians(reps, [
    () => saeEncoder.encode(paired, rows),
    () => ccEncoder.encode(xBase, xChat, rows),
  ]);
  ccEncoder.destroy();
  saeEncoder.destroy();
  const measure = `crosscoder ${rows}x(2x${dModel})x${dict}`;
  const flop = 2 * rows * 2 * dModel * dict;
  const ccRows = peers.map((peer, i) => ({ measure, peer, value: flop / seconds[i] / 1e9, unit: "GFLOP/s" }));
  return [cosine, { title: "crosscoder", versus: peers[0], rows: ccRows }];
}
