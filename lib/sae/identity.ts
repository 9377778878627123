/**
 * An SAE's identity, for run fingerprints: what it computes and a sampled digest of its weights.
 *
 * @module
 */

import { sampledArrayDigest, sha256Hex } from "../core/sha256.ts";
import type { Sae } from "./config.ts";

/** An SAE's identity: its configuration (what it computes) and a sampled digest of its weights. */
export async function saeIdentity(sae: Sae): Promise<string> {
  const { source: _, ...config } = sae.config;
  const { wEnc, bEnc, wDec, bDec, threshold, magnitude } = sae;
  const arrays: Record<string, Float32Array> = { wEnc, bEnc, wDec, bDec, threshold };
  if (magnitude) Object.assign(arrays, { magnitudeScale: magnitude.scale, magnitudeBias: magnitude.bias });
  return sha256Hex([JSON.stringify(config), await sampledArrayDigest(arrays)]);
}
