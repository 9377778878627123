/**
 * Steering semantics: what an intervention on the residual stream does, independent of how the graph
 * implements it. With v̂ = v / |v| and x·v̂ the component of a residual vector x along v:
 * - `addition`:      x + c·v
 * - `ablation`:      x − (x·v̂)v̂ + c·v
 * - `mean_ablation`: x − (x·v̂)v̂ + μ·v̂   (the component along v̂ replaced by a given mean μ)
 * - `capping`:       x − max(0, x·v̂ − τ)·v̂
 * applied after decoder layer L at every position (`all`) or at the last position of each forward
 * pass (`last`: the prompt's last token, then each generated token).
 *
 * @module
 */

import { UserError } from "../core/errors.ts";

/** Intervention kinds (the upstream library's names). */
export type InterventionKind = "addition" | "ablation" | "mean_ablation" | "capping";

/** The kinds, for flag parsing. */
export const INTERVENTION_KINDS: readonly InterventionKind[] = ["addition", "ablation", "mean_ablation", "capping"];

/** Where interventions apply within a forward pass. */
export type SteeringPositions = "all" | "last";

/** One intervention site, fixed when the graph is rewritten (vector and scalars are fed at run time). */
export interface SteeringSite {
  layer: number;
  kind: InterventionKind;
  positions: SteeringPositions;
}

/** Run-time values of one site: the vector and the scalar its kind uses. */
export interface SteeringValues {
  vector: Float32Array;
  /** c for addition/ablation, μ for mean_ablation, τ for capping. */
  scalar: number;
}

/** Graph input names of site `index`. */
export function steeringInputNames(index: number): { vector: string; scalar: string } {
  return { vector: `steering.${index}.vector`, scalar: `steering.${index}.scalar` };
}

/** Parses an intervention kind flag. */
export function parseInterventionKind(value: string): InterventionKind {
  if ((INTERVENTION_KINDS as readonly string[]).includes(value)) return value as InterventionKind;
  throw new UserError(`unknown intervention "${value}": use one of ${INTERVENTION_KINDS.join(", ")}`);
}

/** Parses a positions flag. */
export function parsePositions(value: string): SteeringPositions {
  if (value === "all" || value === "last") return value;
  throw new UserError(`unknown positions "${value}": use all or last`);
}

/**
 * Applies one intervention to residual vector `x` in f64, in place: the textbook definition, used
 * as the reference the rewritten graphs are tested against.
 */
export function applyIntervention(kind: InterventionKind, x: Float64Array, v: ArrayLike<number>, scalar: number): void {
  let norm = 0;
  for (let i = 0; i < x.length; i++) norm += v[i] * v[i];
  norm = Math.sqrt(norm);
  let projection = 0;
  if (norm > 0) { for (let i = 0; i < x.length; i++) projection += x[i] * (v[i] / norm); }
  const unit = (i: number) => (norm > 0 ? v[i] / norm : 0);
  for (let i = 0; i < x.length; i++) {
    switch (kind) {
      case "addition":
        x[i] += scalar * v[i];
        break;
      case "ablation":
        x[i] += scalar * v[i] - projection * unit(i);
        break;
      case "mean_ablation":
        x[i] += (scalar - projection) * unit(i);
        break;
      case "capping":
        x[i] -= Math.max(0, projection - scalar) * unit(i);
        break;
    }
  }
}
