/**
 * An SAE feature as a steering direction: its decoder row W_dec[feature], what one unit of the feature
 * adds to the residual stream (the loaders fold any input normalisation into W_dec, so it is in the
 * model's own units; no other normalisation). `deno task vector --sae --feature` exports it and the
 * page steers with it.
 *
 * @module
 */

import { UserError } from "../core/errors.ts";
import type { Sae } from "./config.ts";

/** W_dec[feature] of `sae` (a copy); a feature out of range is a UserError. */
export function featureDirection(sae: Sae, feature: number): Float32Array {
  const { dIn, dSae } = sae.config;
  if (!Number.isInteger(feature) || feature < 0 || feature >= dSae) {
    throw new UserError(`feature ${feature} is out of range: the SAE has features 0..${dSae - 1}`);
  }
  return sae.wDec.slice(feature * dIn, (feature + 1) * dIn);
}
