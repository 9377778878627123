/**
 * dictionary_learning's crosscoders (science-of-finetuning/dictionary_learning,
 * `dictionary_learning/dictionary.py`: `CrossCoder` and `BatchTopKCrossCoder`), saved through
 * huggingface_hub's `PyTorchModelHubMixin`: `config.json` (the constructor's JSON-able arguments:
 * `activation_dim`, `dict_size`, `num_layers`, `k`, `code_normalization`, ...) and
 * `model.safetensors` (the state dict: `encoder.weight` [L, d, dict], `encoder.bias` [dict],
 * `decoder.weight` [L, dict, d], `decoder.bias` [L, d], the buffers `code_normalization_id`,
 * `activation_mean`/`activation_std` [L, d] (NaN when the model has no input normalizer),
 * `activation_global_scale` [L], `target_rms`, and for BatchTopK `k` and `threshold`).
 *
 * At inference dictionary_learning's `encode` applies (BatchTopK) `f = relu(pre) · (relu(pre) · c_j >
 * threshold)` with c_j the code normalization: the loader keeps the threshold and the model's input
 * normalizer, `(x − mean_m) · global_scale_m` (its `keep_relative_variance` default), is folded into
 * W_enc and b_enc, so encoding needs nothing else.
 *
 * @module
 */

import { join } from "node:path";
import { UserError } from "../../core/errors.ts";
import { SafetensorsFile } from "../../io/safetensors.ts";
import { openSafetensors } from "../../io/safetensors_file.ts";
import type { CodeNormalization, Crosscoder } from "./config.ts";

/** dictionary_learning's `CodeNormalization` enum values (`auto()` from 1, in declaration order). */
const CODE_NORMALIZATION_IDS: Record<number, CodeNormalization | "decoupled"> = {
  1: "crosscoder",
  2: "sae",
  3: "mixed",
  4: "none",
  5: "decoupled",
};

/** A scalar integer or float buffer of the state dict. */
async function scalar(file: SafetensorsFile, name: string): Promise<number> {
  const info = file.info(name);
  const bytes = await file.bytes(name);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (info.dtype === "I64") return Number(view.getBigInt64(0, true));
  if (info.dtype === "I32") return view.getInt32(0, true);
  return (await file.float32(name))[0];
}

/** Loads a dictionary_learning crosscoder from directory `dir`. */
export async function loadDictionaryLearning(dir: string, source: string): Promise<Crosscoder> {
  const cfg = JSON.parse(await Deno.readTextFile(join(dir, "config.json"))) as Record<string, unknown>;
  const file = await openSafetensors(join(dir, "model.safetensors"));
  const shape = file.info("encoder.weight").shape;
  if (shape.length !== 3 || shape[0] !== 2) {
    throw new UserError(
      `${source}: encoder.weight has shape [${shape}], expected [2, d_model, dict_size]: only base-vs-chat crosscoders (two models) are supported`,
    );
  }
  const [, dModel, dict] = shape;
  for (const [key, value] of [["activation_dim", dModel], ["dict_size", dict]] as const) {
    if (cfg[key] !== undefined && Number(cfg[key]) !== value) {
      throw new UserError(`${source}: config.json says ${key} ${cfg[key]} but encoder.weight has ${value}`);
    }
  }
  const batchTopK = "threshold" in file.tensors || "k" in file.tensors;
  const id = "code_normalization_id" in file.tensors ? await scalar(file, "code_normalization_id") : undefined;
  // Checkpoints older than the buffer are CROSSCODER, as dictionary_learning's from_pretrained assumes.
  const named = typeof cfg.code_normalization === "string" ? cfg.code_normalization.toLowerCase() : undefined;
  const kind = id !== undefined ? CODE_NORMALIZATION_IDS[id] : named ?? "crosscoder";
  if (kind === "decoupled" || !kind || !["crosscoder", "sae", "mixed", "none"].includes(kind)) {
    throw new UserError(
      `${source}: code normalization ${
        kind ?? id
      } is not supported (decoupled codes give one code per model): use a CROSSCODER, SAE, MIXED or NONE crosscoder`,
    );
  }
  let wEnc = await file.float32("encoder.weight");
  let bEnc = await file.float32("encoder.bias");
  if ("activation_mean" in file.tensors && "activation_global_scale" in file.tensors) {
    const mean = await file.float32("activation_mean");
    if (!mean.some(Number.isNaN)) {
      const scale = await file.float32("activation_global_scale");
      ({ wEnc, bEnc } = foldNormalizer(wEnc, bEnc, mean, scale, dModel, dict));
    }
  }
  return {
    config: {
      layout: "dictionary_learning",
      architecture: batchTopK ? "batchtopk" : "relu",
      dModel,
      dict,
      k: "k" in file.tensors ? await scalar(file, "k") : undefined,
      threshold: "threshold" in file.tensors ? await scalar(file, "threshold") : undefined,
      codeNormalization: kind as CodeNormalization,
      alphaSae: Number(cfg.code_normalization_alpha_sae ?? 1),
      alphaCc: Number(cfg.code_normalization_alpha_cc ?? 0.1),
      hookLayer: layerInName(source),
      source,
    },
    wEnc,
    bEnc,
    wDec: await file.float32("decoder.weight"),
    bDec: await file.float32("decoder.bias"),
  };
}

/**
 * Folds x' = (x − mean_m) · s_m into the encoder: W'[m, i, :] = s_m · W[m, i, :] and b' = b −
 * Σ_{m,i} mean[m, i] · W'[m, i, :] (sums in f64).
 */
export function foldNormalizer(
  wEnc: Float32Array,
  bEnc: Float32Array,
  mean: Float32Array,
  scale: Float32Array,
  dModel: number,
  dict: number,
): { wEnc: Float32Array; bEnc: Float32Array } {
  const folded = new Float32Array(wEnc.length);
  const bias = Float64Array.from(bEnc);
  for (let m = 0; m < 2; m++) {
    for (let i = 0; i < dModel; i++) {
      const row = (m * dModel + i) * dict;
      for (let j = 0; j < dict; j++) {
        const w = scale[m] * wEnc[row + j];
        folded[row + j] = w;
        bias[j] -= mean[m * dModel + i] * w;
      }
    }
  }
  return { wEnc: folded, bEnc: Float32Array.from(bias) };
}

/**
 * The layer in a dictionary_learning crosscoder's name, as its hub repositories spell it
 * (`gemma-2-2b-crosscoder-l13-mu4.1e-02-lr1e-04`, `gemma-2-2b-L13-k100-...`): the config has none.
 */
export function layerInName(source: string): number | undefined {
  const match = /(?:^|[-_/])[lL](\d+)(?=$|[-_/])/.exec(source);
  return match ? Number(match[1]) : undefined;
}
