/**
 * `deno task capture`: dump residual activations to safetensors, like TransformerLens's
 * run_with_cache or nnsight's .save(), for analysis in any tool. Without --model it captures the
 * demo prompts from the generated tiny Llama.
 */

import { collectResiduals, type PositionRule } from "../lib/runtime/activations.ts";
import { loadForCapture } from "../lib/runtime/runtime.ts";
import { parseTokenTypes, preparePrompts } from "../lib/runtime/chat.ts";
import { parseFlags, parseLayers, positiveInt } from "../lib/cli/flags.ts";
import { CAPTURE } from "../lib/cli/commands.ts";
import { runMain } from "../lib/cli/main.ts";
import { UserError } from "../lib/core/errors.ts";
import { ensureFixtureModel } from "../lib/fixtures/build.ts";
import { DEMO_PROMPTS } from "../lib/fixtures/prompts.ts";
import { readModelShape, resolveModelDir } from "../lib/models/hub.ts";
import { promptsFromFlags } from "../lib/cli/prompts.ts";
import { writeSafetensors } from "../lib/io/safetensors_file.ts";
import { ProgressBar } from "../lib/io/progress.ts";
import { parseDevice, resolveDevice } from "../lib/backend/device.ts";
import { graphDtype, parseDtype } from "../lib/runtime/runtime.ts";

function parsePositionRule(value: string): PositionRule {
  if (value === "last" || value === "all") return { kind: value };
  return { kind: "types", types: parseTokenTypes(value) };
}

await runMain(async () => {
  const { values } = parseFlags(Deno.args, CAPTURE);
  const device = await resolveDevice(parseDevice(values.device!), console.log);
  const dtype = await graphDtype(device, parseDtype(values.dtype));
  const rule = parsePositionRule(values.positions!);
  const batchSize = positiveInt("batch-size", values["batch-size"], 8);
  const maxLength = positiveInt("max-length", values["max-length"], 512);
  const demo = !values.model;
  const source = values.model ?? await ensureFixtureModel("tiny-llama-chat", console.log);
  const prompts = await promptsFromFlags(values, demo ? DEMO_PROMPTS : [], console.log);
  if (!prompts.length) throw new UserError("--prompts is required with --model");
  const out = values.out ?? (demo ? "results/capture-demo.safetensors" : "");
  if (!out.endsWith(".safetensors")) throw new UserError("--out must name a .safetensors file");
  const shape = await readModelShape(await resolveModelDir(source, { dtype }));
  const layers = parseLayers(values.layers!, shape.layers);

  const handle = await loadForCapture(source, layers, { device, dtype, cut: true, log: console.log });
  const prepared = preparePrompts(handle, prompts, {
    raw: values.raw,
    maxLength,
    types: rule.kind === "types" ? rule.types : [],
  });
  const progress = new ProgressBar("capture", prepared.length, "prompts");
  const collected = await collectResiduals(handle, prepared, layers, rule, batchSize, (n) => progress.tick(n));
  progress.finish();

  const perPrompt = rule.kind === "all" ? 0 : collected.positions[0]?.length ?? 0;
  const tensors = Object.fromEntries(layers.map((layer) => {
    const data = collected.byLayer.get(layer)!;
    const shapeOut = rule.kind === "all"
      ? [collected.offsets.at(-1)!, collected.dModel]
      : [prepared.length, perPrompt, collected.dModel];
    return [`resid_post.${layer}`, { dtype: "F32" as const, shape: shapeOut, data }];
  }));
  const headerMissing = rule.kind === "types" ? prepared.filter((p) => !p.headerFound).length : 0;
  const truncated = prepared.filter((p) => p.truncated).length;
  const metadata = {
    model: source,
    layers,
    hook: "resid_post (output of decoder layer L = hidden_states[L+1])",
    positions: rule.kind === "types" ? rule.types.join(",") : rule.kind,
    chat_template: !values.raw,
    d_model: collected.dModel,
    max_length: maxLength,
    truncated,
    header_fallbacks: headerMissing,
    offsets: rule.kind === "all" ? collected.offsets : undefined,
    prompts: prepared.map((p, i) => ({
      prompt: p.prompt,
      text: p.text,
      token_ids: p.ids,
      positions: collected.positions[i],
    })),
  };
  await writeSafetensors(out, tensors, { format: "model-diff/capture/1", metadata: JSON.stringify(metadata) });
  console.log(
    `captured ${layers.length} layer(s) x ${prepared.length} prompts (${metadata.positions}) -> ${out}` +
      (truncated ? `; ${truncated} prompt(s) truncated to ${maxLength} tokens` : "") +
      (headerMissing ? `; assistant header not found in ${headerMissing} prompt(s): read the last token instead` : ""),
  );
  await handle.dispose();
});
