/**
 * SAELens format: `cfg.json` + `sae_weights.safetensors` (W_enc, b_enc, W_dec, b_dec, and threshold
 * or log_threshold for JumpReLU). Reads SAELens 6 configs (`architecture` and a `metadata` block) and
 * older ones (`hook_point`/`hook_name`, `activation_fn_str`, `activation_fn_kwargs`).
 *
 * @module
 */

import { join } from "node:path";
import { UserError } from "../errors.ts";
import { SafetensorsFile } from "../io/safetensors.ts";
import { layerOfHook, type Sae, type SaeArchitecture } from "./config.ts";

type Cfg = Record<string, unknown> & { metadata?: Record<string, unknown> };

function architectureOf(cfg: Cfg): SaeArchitecture {
  const declared = String(cfg.architecture ?? "standard");
  if (declared === "jumprelu") return "jumprelu";
  if (declared === "topk" || cfg.activation_fn_str === "topk") return "topk";
  if (declared === "standard" || declared === "relu") return "relu";
  throw new UserError(
    `SAELens architecture "${declared}" is not supported: use standard (ReLU), jumprelu or topk SAEs`,
  );
}

/** Loads an SAELens SAE from directory `dir`. */
export async function loadSaeLens(dir: string, source: string): Promise<Sae> {
  const cfg = JSON.parse(await Deno.readTextFile(join(dir, "cfg.json"))) as Cfg;
  const meta = { ...cfg, ...(cfg.metadata ?? {}) };
  // Older configs use booleans; "expected_average_only_in" is folded into the weights and is a no-op here.
  const normalize = String(cfg.normalize_activations ?? "none");
  if (!["none", "false", "expected_average_only_in"].includes(normalize)) {
    throw new UserError(`${source}: normalize_activations "${normalize}" is not supported (only "none")`);
  }
  const architecture = architectureOf(cfg);
  const file = await SafetensorsFile.open(join(dir, "sae_weights.safetensors"));
  const dIn = Number(cfg.d_in);
  const dSae = Number(cfg.d_sae);
  let threshold: Float32Array = new Float32Array(dSae);
  if (architecture === "jumprelu") {
    threshold = "threshold" in file.tensors
      ? await file.float32("threshold")
      : (await file.float32("log_threshold")).map(Math.exp);
  }
  const kwargs = (cfg.activation_fn_kwargs ?? {}) as Record<string, unknown>;
  return {
    config: {
      format: "saelens",
      architecture,
      dIn,
      dSae,
      k: architecture === "topk" ? Number(cfg.k ?? kwargs.k) : undefined,
      applyBDecToInput: Boolean(cfg.apply_b_dec_to_input),
      hookLayer: typeof meta.hook_layer === "number" ? meta.hook_layer : layerOfHook(meta.hook_name ?? meta.hook_point),
      modelName: meta.model_name as string | undefined,
      neuronpediaId: (meta.neuronpedia_id as string | null) ?? undefined,
      source,
    },
    wEnc: await file.float32("W_enc"),
    bEnc: await file.float32("b_enc"),
    wDec: await file.float32("W_dec"),
    bDec: await file.float32("b_dec"),
    threshold,
  };
}
