/**
 * Llama Scope format: `hyperparams.json` + `checkpoints/final.safetensors` holding torch Linear
 * weights (`encoder.weight` [d_sae, d_model], `decoder.weight` [d_model, d_sae], biases). Inputs are
 * normalised dataset-wise: x' = x · s with s = sqrt(d_model) / dataset_average_activation_norm.in.
 * We convert exactly as SAELens's `llama_scope_sae_huggingface_loader` does, so features match what
 * SAELens (and Neuronpedia) compute: W_enc · s, W_dec / s, b_dec / s, b_enc unchanged, and the
 * scalar `jump_relu_threshold` · s. Like SAELens we ignore `sparsity_include_decoder_norm` (the
 * authors' own code scales by decoder norms there; the two agree when those norms are 1).
 *
 * @module
 */

import { UserError } from "../core/errors.ts";
import { type FileSource, readJsonObjectFrom } from "../core/file_source.ts";
import { SafetensorsFile } from "../io/safetensors.ts";
import { transposeMatrix } from "../core/matrix.ts";
import { layerOfHook, type Sae } from "./config.ts";

/** Loads a Llama Scope SAE from `files` (`source` names it in messages). */
export async function loadLlamaScope(files: FileSource, source: string): Promise<Sae> {
  const hp = await readJsonObjectFrom(files, "hyperparams.json");
  const file = await SafetensorsFile.read(files, "checkpoints/final.safetensors");
  const dIn = Number(hp.d_model);
  const dSae = Number(hp.d_sae);
  const act = String(hp.act_fn ?? "jumprelu");
  if (act !== "jumprelu" && act !== "relu") {
    throw new UserError(`${source}: Llama Scope act_fn "${act}" is not supported`);
  }
  let scale = 1;
  if (hp.norm_activation === "dataset-wise") {
    const norm = (hp.dataset_average_activation_norm as { in?: number } | undefined)?.in;
    if (!norm) throw new UserError(`${source}: hyperparams.json lacks dataset_average_activation_norm.in`);
    scale = Math.sqrt(dIn) / norm;
  }
  const wEnc = transposeMatrix(await file.float32("encoder.weight"), dSae, dIn).map((w) => w * scale);
  const wDec = transposeMatrix(await file.float32("decoder.weight"), dIn, dSae).map((w) => w / scale);
  return {
    config: {
      format: "llamascope",
      architecture: act === "relu" ? "relu" : "jumprelu",
      dIn,
      dSae,
      applyBDecToInput: Boolean(hp.apply_decoder_bias_to_pre_encoder),
      hookLayer: layerOfHook(hp.hook_point_in),
      modelName: hp.model_name as string | undefined,
      source,
    },
    wEnc,
    bEnc: await file.float32("encoder.bias"),
    wDec,
    bDec: (await file.float32("decoder.bias")).map((b) => b / scale),
    // As SAELens's llama_scope loader does (and so Neuronpedia's numbers): the scalar threshold times s.
    threshold: new Float32Array(dSae).fill(Number(hp.jump_relu_threshold ?? 0) * scale),
  };
}
