import { assert, assertClose, assertEquals } from "../assert.ts";
import { DEVICES } from "../../lib/backend/device.ts";
import { UserError } from "../../lib/core/errors.ts";
import { SeededRandom } from "../../lib/core/random.ts";
import { createEncoder } from "../../lib/encoders/encoder.ts";
import { encoderInput } from "../../lib/sae/feature_encoder.ts";
import { FeatureStats, METRICS } from "../../lib/features/stats.ts";
import { randomSae } from "../random_sae.ts";

/** Two f32 computations of the same statistics (GPU kernels vs MLAS + TypeScript), per element. */
const DEVICE_TOLERANCE = { rtol: 1e-5, atol: 1e-5 };

Deno.test("WebGPU and CPU encoders give the same activations and statistics for every architecture", async () => {
  const [dIn, dSae, rows] = [33, 130, 12];
  const types = ["asst", "endheader", "newline"];
  const rowType = Uint32Array.from({ length: rows }, (_, r) => r % 3);
  for (const architecture of ["relu", "jumprelu", "topk", "gated"] as const) {
    const sae = randomSae(dIn, dSae, architecture, 17, architecture === "relu" || architecture === "gated");
    const x = new SeededRandom(8).normals(rows * dIn, 2);
    const results = [];
    for (const device of DEVICES) {
      const encoder = await createEncoder(sae, device);
      const stats = FeatureStats.empty(types, dSae);
      await encoder.encodeInto(x, rows, rowType, stats);
      results.push({ device, f: await encoder.encode(x, rows), metrics: stats.finalize() });
      encoder.destroy();
    }
    const [gpu, cpu] = results;
    assertClose(cpu.f, gpu.f, { ...DEVICE_TOLERANCE, label: `${architecture} activations` });
    for (const type of types) {
      for (const name of METRICS) {
        assertClose(cpu.metrics[type][name], gpu.metrics[type][name], {
          ...DEVICE_TOLERANCE,
          label: `${architecture} ${type} ${name}`,
        });
      }
    }
  }
});

Deno.test("encoder input: NaN or infinite values are a user error naming the row; b_dec is subtracted when asked", () => {
  const sae = randomSae(4, 8, "relu", 1, true);
  const x = new Float32Array(8).fill(1);
  const shifted = encoderInput(sae, x, 2);
  for (let i = 0; i < 8; i++) assertEquals(shifted[i], Math.fround(1 - sae.bDec[i % 4]));
  assert(encoderInput({ ...sae, config: { ...sae.config, applyBDecToInput: false } }, x, 2) === x, "no copy");
  x[6] = Infinity;
  try {
    encoderInput(sae, x, 2);
    throw new Error("expected a failure");
  } catch (error) {
    assert(error instanceof UserError && /row 1 contains NaN or infinite/.test(error.message), String(error));
  }
});
