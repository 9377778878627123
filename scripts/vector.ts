/**
 * `deno task vector`: writes a steering vector (contrast, ADL, any vector file) or an SAE feature's
 * decoder direction as a llama.cpp control vector (GGUF), for `llama-cli --control-vector FILE`,
 * Ollama or repeng's `ControlVector.import_gguf`. The layer numbering is llama.cpp's and ours alike
 * (`direction.L` is added after block L; see lib/io/control_vector.ts).
 */

import { nonNegativeInt, parseFlags, parseLayers } from "../lib/cli/flags.ts";
import { VECTOR } from "../lib/cli/commands.ts";
import { runMain } from "../lib/cli/main.ts";
import { UserError } from "../lib/core/errors.ts";
import { exportControlVector, modelShapeOf, type VectorSource } from "../lib/run/vector_export.ts";

await runMain(async () => {
  const { values } = parseFlags(Deno.args, VECTOR);
  if (!values.out) throw new UserError("pass --out FILE.gguf");
  if (!!values.vector === !!values.sae) throw new UserError("pass one source: --vector FILE or --sae SAE --feature N");
  if (values.sae && values.feature === undefined) throw new UserError("--sae needs --feature N");
  const source: VectorSource = values.sae
    ? { kind: "sae", sae: values.sae, feature: nonNegativeInt("feature", values.feature, 0) }
    : { kind: "file", path: values.vector!, name: values["vector-name"] };
  const model = values.model ? await modelShapeOf(values.model) : undefined;
  const layers = values.layer === undefined
    ? undefined
    : values.layer.trim() === "all"
    ? "all" as const
    : parseLayers(values.layer, model?.layers ?? Number.MAX_SAFE_INTEGER);
  const magnitude = values.mag === undefined ? undefined : Number(values.mag);
  if (magnitude !== undefined && (values.mag!.trim() === "" || !Number.isFinite(magnitude))) {
    throw new UserError(`--mag must be a number, got "${values.mag}"`);
  }
  const result = await exportControlVector({
    source,
    out: values.out,
    layers,
    magnitude,
    model,
    modelHint: values["model-hint"],
  });
  console.log(
    `wrote ${result.out}: control vector for ${result.modelHint}, layers ${
      result.layers.join(", ")
    }, d_model ${result.width}${magnitude === undefined ? "" : `, magnitude ${magnitude} folded in`}`,
  );
  console.log(`llama.cpp: llama-cli -m MODEL.gguf --control-vector ${result.out}`);
});
