/**
 * Which device a run uses. `--device auto` (the default) takes WebGPU only on a hardware adapter: on a
 * software one (Mesa's llvmpipe/lavapipe, SwiftShader, WARP) every kernel is emulated on the CPU and
 * runs one to two orders of magnitude slower than onnxruntime-node's CPU kernels on the same cores,
 * so there the models run on onnxruntime-node and the SAE encode on its MatMul. The choice is said in
 * one line, with the reason.
 *
 * @module
 */

import { UserError } from "../core/errors.ts";
import { type AdapterProbe, probeAdapter } from "./gpu.ts";

/** Where a run computes: models, SAE encode and statistics all on one side. */
export type Device = "webgpu" | "cpu";

/** What `--device` accepts: a device, or `auto` to pick one from the adapter. */
export type DeviceChoice = Device | "auto";

/** The devices a run can use (what tests loop over). */
export const DEVICES: readonly Device[] = ["webgpu", "cpu"];

const CHOICES: readonly DeviceChoice[] = ["auto", ...DEVICES];

/** Parses a `--device` value. */
export function parseDevice(value: string): DeviceChoice {
  if ((CHOICES as readonly string[]).includes(value)) return value as DeviceChoice;
  throw new UserError(`unknown device "${value}": use --device auto, webgpu or cpu`);
}

/** A resolved device and, for `auto`, the line that says why. */
export interface DevicePick {
  device: Device;
  /** Set for `auto` only: an explicit choice needs no explanation. */
  reason?: string;
}

const CPU_SIDE = "models on onnxruntime-node, SAE encode on its CPU MatMul; --device webgpu forces the GPU path";

/** The device for `choice` given what the adapter probe found (undefined: no adapter). */
export function pickDevice(choice: DeviceChoice, adapter: AdapterProbe | undefined): DevicePick {
  if (choice !== "auto") return { device: choice };
  if (!adapter) return { device: "cpu", reason: `device cpu (auto: no WebGPU adapter; ${CPU_SIDE})` };
  if (adapter.isSoftware) {
    return {
      device: "cpu",
      reason: `device cpu (auto: the WebGPU adapter "${adapter.description}" is a software renderer; ${CPU_SIDE})`,
    };
  }
  return { device: "webgpu", reason: `device webgpu (auto: hardware WebGPU adapter "${adapter.description}")` };
}

/** Resolves `choice`, probing the adapter only for `auto`, and logs auto's one line. */
export async function resolveDevice(choice: DeviceChoice, log: (line: string) => void = () => {}): Promise<Device> {
  const pick = pickDevice(choice, choice === "auto" ? await probeAdapter() : undefined);
  if (pick.reason) log(pick.reason);
  return pick.device;
}
