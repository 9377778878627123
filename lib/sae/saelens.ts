/**
 * SAELens format: `cfg.json` + `sae_weights.safetensors`. Reads SAELens 6 configs (`architecture` and a
 * `metadata` block) and older ones (`hook_point`/`hook_name`, `activation_fn_str`, `activation_fn_kwargs`),
 * with SAELens's defaults for what a config leaves out (`apply_b_dec_to_input` true: `SAEConfig` in
 * `sae_lens/saes/sae.py`, and `handle_pre_6_0_config` in `sae_lens/loading/pretrained_sae_loaders.py`).
 *
 * Tensors per architecture, as SAELens's modules name them (`sae_lens/saes/*.py`, jbloomAus/SAELens 6.18):
 * W_enc [d_in, d_sae], W_dec [d_sae, d_in], b_dec [d_in], and b_enc (standard, topk), b_enc with
 * threshold or log_threshold (jumprelu), or b_gate, r_mag and b_mag and no b_enc (gated).
 *
 * @module
 */

import { UserError } from "../core/errors.ts";
import { type FileSource, readJsonObjectFrom } from "../core/file_source.ts";
import { SafetensorsFile } from "../io/safetensors.ts";
import { layerOfHook, type Sae, type SaeArchitecture } from "./config.ts";

function architectureOf(cfg: Record<string, unknown>, source: string): SaeArchitecture {
  const declared = String(cfg.architecture ?? "standard");
  if (declared === "jumprelu") return "jumprelu";
  if (declared === "gated") return "gated";
  if (declared === "topk" || cfg.activation_fn_str === "topk") return "topk";
  if (declared === "standard" || declared === "relu") return "relu";
  throw new UserError(
    `${source}: SAELens architecture "${declared}" is not supported: use standard (ReLU), jumprelu, gated or topk SAEs`,
  );
}

/**
 * Folds SAELens's TopK `rescale_acts_by_decoder_norm` into the weights, in place, exactly as SAELens's own
 * `_fold_norm_topk` does (`sae_lens/saes/topk_sae.py`, lines 532-541 at 6.18): with n_j the norm of
 * decoder row j, W_enc[:, j] · n_j, b_enc[j] · n_j, W_dec[j] / n_j. SAELens's `TopKSAE.encode` takes the
 * top k of (x W_enc + b_enc) · n and `decode` divides the activations by n again (lines 245-250 and
 * 262-263), so the folded SAE encodes and decodes to the same values with the plain TopK definition.
 * A zero decoder row keeps its zeros (SAELens's decode would divide by zero there).
 */
function foldDecoderNorm(sae: Pick<Sae, "wEnc" | "bEnc" | "wDec">, dIn: number, dSae: number): void {
  for (let j = 0; j < dSae; j++) {
    let sum = 0;
    for (let i = 0; i < dIn; i++) sum += sae.wDec[j * dIn + i] ** 2;
    const norm = Math.fround(Math.sqrt(sum));
    for (let i = 0; i < dIn; i++) sae.wEnc[i * dSae + j] *= norm;
    sae.bEnc[j] *= norm;
    if (norm > 0) { for (let i = 0; i < dIn; i++) sae.wDec[j * dIn + i] /= norm; }
  }
}

/** Top-k's k: a positive integer from `k` (SAELens 6) or `activation_fn_kwargs.k` (older configs). */
function topK(cfg: Record<string, unknown>, source: string): number {
  const kwargs = (cfg.activation_fn_kwargs ?? {}) as Record<string, unknown>;
  const k = cfg.k ?? kwargs.k;
  if (typeof k !== "number" || !Number.isInteger(k) || k < 1) {
    throw new UserError(`${source}: a topk SAE needs a positive integer k in cfg.json, found ${JSON.stringify(k)}`);
  }
  return k;
}

/** Loads an SAELens SAE from `files` (`source` names it in messages). */
export async function loadSaeLens(files: FileSource, source: string): Promise<Sae> {
  const cfg = await readJsonObjectFrom(files, "cfg.json");
  const meta = { ...cfg, ...((cfg.metadata ?? {}) as Record<string, unknown>) };
  // Older configs use booleans; "expected_average_only_in" is folded into the weights and is a no-op here.
  const normalize = String(cfg.normalize_activations ?? "none");
  if (!["none", "false", "expected_average_only_in"].includes(normalize)) {
    throw new UserError(`${source}: normalize_activations "${normalize}" is not supported (only "none")`);
  }
  const architecture = architectureOf(cfg, source);
  const file = await SafetensorsFile.read(files, "sae_weights.safetensors");
  const [dIn, dSae] = ["d_in", "d_sae"].map((key) => {
    const value = cfg[key];
    if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
      throw new UserError(`${source}: cfg.json needs a positive integer ${key}, found ${JSON.stringify(value)}`);
    }
    return value;
  });
  const sae: Sae = {
    config: {
      format: "saelens",
      architecture,
      dIn,
      dSae,
      k: architecture === "topk" ? topK(cfg, source) : undefined,
      applyBDecToInput: Boolean(cfg.apply_b_dec_to_input ?? true),
      hookLayer: typeof meta.hook_layer === "number" ? meta.hook_layer : layerOfHook(meta.hook_name ?? meta.hook_point),
      modelName: meta.model_name as string | undefined,
      neuronpediaId: (meta.neuronpedia_id as string | null) ?? undefined,
      source,
    },
    wEnc: await file.float32("W_enc"),
    // A gated SAE has no b_enc (GatedSAE sets it to None): its gate bias b_gate takes that place.
    bEnc: await file.float32(architecture === "gated" ? "b_gate" : "b_enc"),
    wDec: await file.float32("W_dec"),
    bDec: await file.float32("b_dec"),
    threshold: new Float32Array(dSae),
  };
  if (architecture === "jumprelu") {
    sae.threshold = "threshold" in file.tensors
      ? await file.float32("threshold")
      : (await file.float32("log_threshold")).map(Math.exp);
  }
  if (architecture === "gated") {
    sae.magnitude = { scale: (await file.float32("r_mag")).map(Math.exp), bias: await file.float32("b_mag") };
  }
  // Tensors of the wrong size are left for loadSae to name.
  const sized = sae.wDec.length === dSae * dIn && sae.wEnc.length === dIn * dSae && sae.bEnc.length === dSae;
  if (architecture === "topk" && cfg.rescale_acts_by_decoder_norm === true && sized) foldDecoderNorm(sae, dIn, dSae);
  return sae;
}
