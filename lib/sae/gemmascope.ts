/**
 * Gemma Scope format: `params.npz` with W_enc [d_model, d_sae], W_dec [d_sae, d_model], b_enc,
 * b_dec and a per-feature JumpReLU threshold; f = (x W_enc + b_enc) · (pre > threshold).
 *
 * @module
 */

import { UserError } from "../core/errors.ts";
import type { FileSource } from "../core/file_source.ts";
import { readNpz } from "../io/npz.ts";
import type { Sae } from "./config.ts";

/** Loads a Gemma Scope SAE from `files` (`source` names it in messages). */
export async function loadGemmaScope(files: FileSource, source: string): Promise<Sae> {
  const arrays = await readNpz(files, "params.npz");
  for (const name of ["W_enc", "W_dec", "b_enc", "b_dec", "threshold"]) {
    if (!arrays[name]) throw new UserError(`${source}/params.npz has no ${name} array`);
  }
  const [dIn, dSae] = arrays.W_enc.shape;
  return {
    config: { format: "gemmascope", architecture: "jumprelu", dIn, dSae, applyBDecToInput: false, source },
    wEnc: arrays.W_enc.data,
    bEnc: arrays.b_enc.data,
    wDec: arrays.W_dec.data,
    bDec: arrays.b_dec.data,
    threshold: arrays.threshold.data,
  };
}
