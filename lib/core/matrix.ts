/**
 * Small dense-matrix helpers shared by the fixtures and the SAE loaders.
 *
 * @module
 */

/** Transposes a row-major [rows, cols] matrix (e.g. torch Linear [out, in] to [in, out]). */
export function transposeMatrix(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c];
  return out;
}
