/**
 * Gemma Scope 2 format (the SAEs of Gemma 3): a folder such as `resid_post/layer_13_width_16k_l0_medium`
 * holding `config.json` and `params.safetensors` with lowercase `w_enc` [d_in, d_sae], `w_dec`
 * [d_sae, d_in], `b_enc`, `b_dec` and a per-feature `threshold`; JumpReLU, f = pre · [pre > threshold],
 * no b_dec on the input. Read as SAELens reads it: `get_gemma_3_config_from_hf` and
 * `gemma_3_sae_huggingface_loader` in `sae_lens/loading/pretrained_sae_loaders.py` (decoderesearch/SAELens
 * at e05f04416f43c62ef2cb42414e3f846312710553): `architecture` must be "jump_relu", d_in and d_sae come
 * from w_enc's shape, `apply_b_dec_to_input` is False, the hook from `hf_hook_point_in`.
 *
 * The same release holds transcoders (`hf_hook_point_out` differs from `hf_hook_point_in`, plus an
 * `affine_skip_connection`), cross-layer transcoders (a 3-D w_dec) and SAEs of attention or MLP
 * outputs; model-diff encodes the residual stream, so those are refused in one line.
 *
 * @module
 */

import { UserError } from "../core/errors.ts";
import { type FileSource, readJsonObjectFrom } from "../core/file_source.ts";
import { SafetensorsFile } from "../io/safetensors.ts";
import type { Sae } from "./config.ts";

/** The residual stream after decoder layer L, as Hugging Face names the hook (SAELens: `blocks.L.hook_resid_post`). */
const RESIDUAL_HOOK = /^model\.layers\.(\d+)\.output$/;

/** Loads a Gemma Scope 2 SAE from `files` (`source` names it in messages). */
export async function loadGemmaScope2(files: FileSource, source: string): Promise<Sae> {
  const config = await readJsonObjectFrom(files, "config.json");
  if (config.architecture !== "jump_relu") {
    throw new UserError(
      `${source}: Gemma Scope 2 architecture "${config.architecture}" is not supported (only "jump_relu")`,
    );
  }
  const hookIn = String(config.hf_hook_point_in ?? "");
  const hookOut = config.hf_hook_point_out;
  const file = await SafetensorsFile.read(files, "params.safetensors");
  if ((hookOut !== undefined && hookOut !== hookIn) || "affine_skip_connection" in file.tensors) {
    throw new UserError(
      `${source} is a transcoder (reads ${hookIn}, writes ${hookOut}), not an SAE: model-diff encodes the residual stream with an SAE`,
    );
  }
  const layer = RESIDUAL_HOOK.exec(hookIn);
  if (!layer) {
    throw new UserError(
      `${source} is an SAE of ${
        hookIn || "an unnamed hook"
      }, not of the residual stream (model.layers.L.output), which model-diff reads`,
    );
  }
  const encoder = file.info("w_enc").shape;
  if (encoder.length !== 2) throw new UserError(`${source}: w_enc has shape [${encoder}], expected [d_in, d_sae]`);
  const [dIn, dSae] = encoder;
  const expected: Record<string, number[]> = { w_dec: [dSae, dIn], b_enc: [dSae], b_dec: [dIn], threshold: [dSae] };
  for (const [name, shape] of Object.entries(expected)) {
    const found = file.info(name).shape;
    if (found.join() !== shape.join()) {
      throw new UserError(`${source}: ${name} has shape [${found}], expected [${shape}] for w_enc [${dIn}, ${dSae}]`);
    }
  }
  return {
    config: {
      format: "gemmascope2",
      architecture: "jumprelu",
      dIn,
      dSae,
      applyBDecToInput: false,
      hookLayer: Number(layer[1]),
      modelName: typeof config.model_name === "string" ? config.model_name : undefined,
      source,
    },
    wEnc: await file.float32("w_enc"),
    bEnc: await file.float32("b_enc"),
    wDec: await file.float32("w_dec"),
    bDec: await file.float32("b_dec"),
    threshold: await file.float32("threshold"),
  };
}
