import { assert, assertEquals } from "../assert.ts";
import { parseDevice, pickDevice, resolveDevice } from "../../lib/backend/device.ts";
import { UserError } from "../../lib/core/errors.ts";
import { type AdapterProbe, isSoftwareAdapter, probeAdapter } from "../../lib/backend/gpu.ts";

const probe = await probeAdapter();

Deno.test("software renderers are told from hardware adapters by isFallbackAdapter or by name", () => {
  const info = (description: string, extra: Partial<GPUAdapterInfo> = {}) => ({
    vendor: "",
    architecture: "",
    description,
    ...extra,
  });
  for (
    const software of [
      info("llvmpipe (LLVM 15.0.6, 256 bits)"),
      info("lavapipe"),
      info("SwiftShader Device (Subzero)", { vendor: "Google" }),
      info("Microsoft Basic Render Driver"),
      info("some new renderer", { isFallbackAdapter: true }),
    ]
  ) assert(isSoftwareAdapter(software), software.description);
  for (
    const hardware of [
      info("NVIDIA H100 80GB HBM3", { vendor: "nvidia" }),
      info("AMD Radeon RX 7900 XTX", { vendor: "amd", architecture: "rdna-3" }),
      info("Apple M2", { vendor: "apple", isFallbackAdapter: false }),
      info("Intel(R) Arc(tm) A770 Graphics (DG2)"),
    ]
  ) assert(!isSoftwareAdapter(hardware), hardware.description);
});

Deno.test("auto: hardware adapter -> webgpu, software or none -> cpu, each with one line saying why; explicit choices pass", () => {
  const adapter = (description: string, isSoftware: boolean) =>
    ({ adapter: {} as GPUAdapter, description, isSoftware }) satisfies AdapterProbe;
  const hardware = pickDevice("auto", adapter("NVIDIA H100", false));
  assertEquals(hardware.device, "webgpu");
  assert(/hardware WebGPU adapter "NVIDIA H100"/.test(hardware.reason!), hardware.reason);
  const software = pickDevice("auto", adapter("llvmpipe (LLVM 15)", true));
  assertEquals(software.device, "cpu");
  assert(/"llvmpipe \(LLVM 15\)" is a software renderer.*--device webgpu forces/.test(software.reason!));
  const none = pickDevice("auto", undefined);
  assertEquals(none.device, "cpu");
  assert(/no WebGPU adapter/.test(none.reason!), none.reason);
  for (const device of ["webgpu", "cpu"] as const) {
    assertEquals(pickDevice(device, adapter("llvmpipe", true)), { device });
    assertEquals(pickDevice(device, adapter("NVIDIA H100", false)), { device });
  }
});

Deno.test({
  name: "auto picks cpu on this machine's software adapter and says so in one line",
  ignore: !probe?.isSoftware,
  fn: async () => {
    const lines: string[] = [];
    assertEquals(await resolveDevice("auto", (line) => lines.push(line)), "cpu");
    assertEquals(lines.length, 1, lines.join("\n"));
    assert(lines[0].includes(probe!.description) && /software renderer/.test(lines[0]), lines[0]);
    // An explicit choice is not explained and not overridden.
    assertEquals(await resolveDevice("webgpu", (line) => lines.push(line)), "webgpu");
    assertEquals(lines.length, 1);
  },
});

Deno.test("--device takes auto, webgpu or cpu; anything else is a user error naming the choices", () => {
  for (const value of ["auto", "webgpu", "cpu"]) assertEquals(parseDevice(value), value);
  try {
    parseDevice("gpu");
    throw new Error("expected a failure");
  } catch (error) {
    assert(error instanceof UserError && /use --device auto, webgpu or cpu/.test(error.message), String(error));
  }
});
