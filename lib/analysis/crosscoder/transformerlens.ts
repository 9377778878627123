/**
 * The TransformerLens crosscoder replication (ckkissane/crosscoder-model-diff-replication,
 * `crosscoder.py`, after Neel Nanda's Crosscoders): `cfg.json` (`d_in`, `dict_size`, `hook_point`
 * such as `blocks.14.hook_resid_pre`, `enc_dtype`, ...) and `cc_weights.pt` (as `load_from_hf`
 * downloads them; `torch.save` of the state dict) with `W_enc` [2, d, dict], `W_dec` [dict, 2, d],
 * `b_enc` [dict], `b_dec` [2, d]; index 0 = model A (base), 1 = model B (chat). Encoding is
 * relu(Σ_m x_m W_enc[m] + b_enc).
 *
 * Its training buffer (`buffer.py`) scales each model's activations by sqrt(d_model) / (their mean
 * norm) and stores neither factor, so they come from the user (`inputScale`) and are folded into
 * W_enc here.
 *
 * @module
 */

import { join } from "node:path";
import { UserError } from "../../core/errors.ts";
import { readTorchStateDict, type TorchTensor } from "../../io/torch.ts";
import type { Crosscoder } from "./config.ts";

/**
 * The residual layer (output of decoder layer L) a TransformerLens hook reads: `blocks.N.hook_resid_pre`
 * is the output of layer N − 1, `blocks.N.hook_resid_post` that of layer N; other hooks (resid_mid,
 * embeddings: resid_pre of block 0) are not residuals this toolkit captures.
 */
export function residualLayerOfHook(hook: string, source: string): number {
  const match = /^blocks\.(\d+)\.hook_resid_(pre|post)$/.exec(hook);
  const layer = match ? Number(match[1]) - (match[2] === "pre" ? 1 : 0) : -1;
  if (layer < 0) {
    throw new UserError(
      `${source}: hook_point "${hook}" is not the output of a decoder layer (blocks.N.hook_resid_post, or blocks.N.hook_resid_pre with N ≥ 1)`,
    );
  }
  return layer;
}

/** Loads a TransformerLens-layout crosscoder from `dir`, scaling model m's input by `inputScale[m]`. */
export async function loadTransformerLens(
  dir: string,
  source: string,
  inputScale: readonly [number, number] = [1, 1],
): Promise<Crosscoder> {
  const cfg = JSON.parse(await Deno.readTextFile(join(dir, "cfg.json"))) as Record<string, unknown>;
  const tensors = await readTorchStateDict(join(dir, "cc_weights.pt"));
  const get = (name: string, rank: number): TorchTensor => {
    const tensor = tensors.get(name);
    if (!tensor) {
      throw new UserError(`${source}/cc_weights.pt has no ${name} (it has: ${[...tensors.keys()].join(", ")})`);
    }
    if (tensor.shape.length !== rank) throw new UserError(`${source}: ${name} has shape [${tensor.shape}]`);
    return tensor;
  };
  const enc = get("W_enc", 3);
  const [models, dModel, dict] = enc.shape;
  if (models !== 2) throw new UserError(`${source}: W_enc has shape [${enc.shape}], expected [2, d_in, dict_size]`);
  for (const [key, value] of [["d_in", dModel], ["dict_size", dict]] as const) {
    if (cfg[key] !== undefined && Number(cfg[key]) !== value) {
      throw new UserError(`${source}: cfg.json says ${key} ${cfg[key]} but W_enc has ${value}`);
    }
  }
  const dec = get("W_dec", 3);
  if (dec.shape.join() !== [dict, 2, dModel].join()) {
    throw new UserError(`${source}: W_dec has shape [${dec.shape}], expected [${dict}, 2, ${dModel}]`);
  }
  // [dict, 2, d] → [2, dict, d], the one orientation the rest of the toolkit reads.
  const wDec = new Float32Array(dec.data.length);
  for (let j = 0; j < dict; j++) {
    for (let m = 0; m < 2; m++) {
      wDec.set(dec.data.subarray((j * 2 + m) * dModel, (j * 2 + m + 1) * dModel), (m * dict + j) * dModel);
    }
  }
  const wEnc = enc.data.map((w, i) => w * inputScale[Math.floor(i / (dModel * dict))]);
  return {
    config: {
      layout: "transformerlens",
      architecture: "relu",
      dModel,
      dict,
      codeNormalization: "crosscoder",
      alphaSae: 1,
      alphaCc: 0.1,
      hookLayer: typeof cfg.hook_point === "string" ? residualLayerOfHook(cfg.hook_point, source) : undefined,
      source,
    },
    wEnc,
    bEnc: get("b_enc", 1).data,
    wDec,
    bDec: get("b_dec", 2).data,
  };
}
