/**
 * Names of the vectors this toolkit writes, shared by their writers and readers.
 *
 * @module
 */

/** Name of the contrast vector of `layer` in the sweep's output. */
export function contrastTensorName(layer: number): string {
  return `contrast.${layer}`;
}
