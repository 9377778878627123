/**
 * What the finite-number checks cost (lib/io/finite.ts), priced against the same work with the check
 * skipped through its seam, both peers interleaved in one run on the largest fixtures (the demo's
 * tiny-llama base and chat, 75 MB of F32 weights each, and the Llama Scope SAE):
 * - a warm `diff` (graphs cached): what every run pays, i.e. the SAE's tensors checked at load;
 * - a cold build of the chat checkpoint's graph (fresh cache root each time): the one-time pass over
 *   every F32 tensor referenced in place, paid once per checkpoint and remembered by the cache;
 * - the scan alone (no I/O) over the same values, which end-to-end noise on a shared machine can hide.
 *
 * Run alone: `deno run -A lib/bench/finite_check.ts [reps] [device]` (defaults 5, cpu).
 *
 * @module
 */

import { join } from "node:path";
import { type DeviceChoice, resolveDevice } from "../backend/device.ts";
import { ensureFixtureModel, ensureFixtureSae } from "../fixtures/build.ts";
import { DEMO_PROMPTS } from "../fixtures/prompts.ts";
import { firstNonFinite, skipFiniteChecksForBench } from "../io/finite.ts";
import { openSafetensors } from "../io/safetensors_file.ts";
import { modelDirFromCheckpoint } from "../models/from_checkpoint.ts";
import { collectDiff } from "../run/diff_run.ts";
import { type BenchRow, interleavedMedians } from "./table.ts";

/** The peer every row of {@linkcode finiteCheckRows} is compared with. */
export const FINITE_CHECK_PEER = "check skipped";

/** Runs `body` with the finite checks on or skipped, restoring the setting after. */
async function withChecks<T>(on: boolean, body: () => Promise<T>): Promise<T> {
  const previous = skipFiniteChecksForBench(!on);
  try {
    return await body();
  } finally {
    skipFiniteChecksForBench(previous);
  }
}

/** The two peers of a measure as rows: with the check and without, the overhead in the first's note. */
function pair(measure: string, unit: string, count: number, [on, off]: number[]): BenchRow[] {
  const overhead = `${(100 * (on - off) / off).toFixed(1)} % over the run without (${on.toFixed(3)} s vs ${
    off.toFixed(3)
  } s)`;
  return [
    { measure, peer: "finite check on", value: count / on, unit, note: overhead },
    { measure, peer: FINITE_CHECK_PEER, value: count / off, unit, note: `${off.toFixed(3)} s per run` },
  ];
}

/** Rows pricing the finite checks in a warm diff and in a cold checkpoint build, on `device`. */
export async function finiteCheckRows(reps: number, device: DeviceChoice = "cpu"): Promise<BenchRow[]> {
  const base = await ensureFixtureModel("tiny-llama-base");
  const chat = await ensureFixtureModel("tiny-llama-chat");
  const sae = await ensureFixtureSae("tiny-llama-sae-llamascope");
  const resolved = await resolveDevice(device);
  const scratch = await Deno.makeTempDir({ prefix: "bench-finite-" });
  try {
    const diff = () =>
      collectDiff({
        base,
        chat,
        sae,
        layer: 2,
        prompts: DEMO_PROMPTS,
        tokenTypes: ["asst", "endheader", "newline"],
        batchSize: 32,
        maxLength: 512,
        checkpointEvery: 0,
        resume: false,
        device: resolved,
        outDir: join(scratch, "diff"),
      });
    const warm = await interleavedMedians(reps, [() => withChecks(true, diff), () => withChecks(false, diff)]);
    // A fresh checkpoint cache root per build: the build (identity from the warm file memo, graph,
    // the in-place check) is what is timed, never a cached entry.
    let builds = 0;
    const build = async () => {
      const previous = Deno.env.get("MODEL_DIFF_CHECKPOINT_CACHE");
      Deno.env.set("MODEL_DIFF_CHECKPOINT_CACHE", join(scratch, `build-${builds++}`));
      try {
        await modelDirFromCheckpoint(chat);
      } finally {
        if (previous === undefined) Deno.env.delete("MODEL_DIFF_CHECKPOINT_CACHE");
        else Deno.env.set("MODEL_DIFF_CHECKPOINT_CACHE", previous);
      }
    };
    const cold = await interleavedMedians(reps, [() => withChecks(true, build), () => withChecks(false, build)]);
    const scan = async (path: string) => {
      const file = await openSafetensors(path);
      const bytes = await Deno.readFile(path);
      const start = file.fileOffset(Object.keys(file.tensors)[0]);
      const values = new Float32Array(bytes.buffer.slice(start, start + Math.floor((bytes.length - start) / 4) * 4));
      const [seconds] = await interleavedMedians(reps * 4, [() => Promise.resolve(firstNonFinite(values))]);
      return { values: values.length, seconds };
    };
    const saeScan = await scan(join(sae, "checkpoints", "final.safetensors"));
    const modelScan = await scan(join(chat, "model.safetensors"));
    const scanRow = (what: string, s: { values: number; seconds: number }, against: number): BenchRow => ({
      measure: `the scan alone: ${what}`,
      peer: "finite check on",
      value: s.values / s.seconds / 1e6,
      unit: "Mvalues/s",
      note: `${(s.seconds * 1000).toFixed(3)} ms = ${
        (100 * s.seconds / against).toFixed(3)
      } % of the check-skipped run`,
    });
    return [
      scanRow(`the SAE's ${saeScan.values} values, per warm diff`, saeScan, warm[1]),
      scanRow(`tiny-llama-chat's ${modelScan.values} values, once per build`, modelScan, cold[1]),
      ...pair(
        `warm diff on ${resolved}, ${DEMO_PROMPTS.length} demo prompts x 2 models`,
        "prompts/s",
        DEMO_PROMPTS.length,
        warm,
      ),
      ...pair("cold build of tiny-llama-chat's graph (75 MB F32, checked once)", "builds/s", 1, cold),
    ];
  } finally {
    await Deno.remove(scratch, { recursive: true });
  }
}
