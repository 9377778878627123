/**
 * Random SAEs for encoder tests, and their f64 reference (lib/fixtures/sae_reference.ts) view.
 */

import { SeededRandom } from "../lib/random.ts";
import type { ReferenceSae } from "../lib/fixtures/sae_reference.ts";
import type { Sae, SaeArchitecture } from "../lib/sae/config.ts";

/** A random SAE of odd sizes (not multiples of any tile). Feature 0 always fires, 1 never. */
export function randomSae(
  dIn: number,
  dSae: number,
  architecture: SaeArchitecture,
  seed: number,
  applyBDec = false,
): Sae {
  const r = new SeededRandom(seed);
  const bEnc = r.normals(dSae, 0.5);
  bEnc[0] = 1e3;
  bEnc[1] = -1e3;
  return {
    config: { format: "saelens", architecture, dIn, dSae, k: 7, applyBDecToInput: applyBDec, source: "random" },
    wEnc: r.normals(dIn * dSae, 1 / Math.sqrt(dIn)),
    bEnc,
    wDec: r.normals(dSae * dIn),
    bDec: r.normals(dIn, 0.3),
    threshold: architecture === "jumprelu"
      ? Float32Array.from({ length: dSae }, () => r.uniform())
      : new Float32Array(dSae),
  };
}

/** The f64 reference SAE with `sae`'s weights and definition. */
export function asReference(sae: Sae): ReferenceSae {
  return {
    ...sae,
    dIn: sae.config.dIn,
    dSae: sae.config.dSae,
    activation: sae.config.architecture,
    k: sae.config.k,
    applyBDecToInput: sae.config.applyBDecToInput,
    inputScale: 1,
  };
}
