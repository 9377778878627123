import { assert, assertEquals, assertMatch } from "../assert.ts";
import { join } from "node:path";
import { UserError } from "../../lib/core/errors.ts";
import { ensureFixtureSae } from "../../lib/fixtures/build.ts";
import { loadSae } from "../../lib/sae/load.ts";
import { checkSaeFitsModel, resolveSaeRelease, SAE_RELEASES } from "../../lib/sae/releases.ts";
import { meaningfulLines, runScript } from "../helpers.ts";
import { tempDir } from "../temp.ts";
import { GEMMA_SCOPE_2, GEMMA_SCOPE_CANONICAL, LLAMA_SCOPE_8X, QWEN_ANDYRDT } from "./saelens_yaml_rows.ts";

/** What the message of a thrown UserError says; anything else fails the test. */
function userError(body: () => unknown): string {
  try {
    body();
  } catch (error) {
    assert(error instanceof UserError, `expected a UserError, got ${error}`);
    assertEquals(error.message.split("\n").length, 1, "one line");
    return error.message;
  }
  throw new Error("expected a UserError");
}

Deno.test("release table: every entry's model, layer, path and Neuronpedia id parse; the required releases are there", () => {
  const { source, releases, models } = SAE_RELEASES;
  assertMatch(source.commit, /^[0-9a-f]{40}$/);
  assert(!Number.isNaN(Date.parse(source.date)), source.date);
  for (
    const name of [
      "gemma-scope-2b-pt-res",
      "gemma-scope-2b-pt-res-canonical",
      "gemma-scope-9b-pt-res",
      "gemma-scope-9b-pt-res-canonical",
      "gemma-scope-2-4b-pt-res",
      "gemma-scope-2-27b-it-res-all",
      "llama_scope_lxr_8x",
      "llama_scope_lxr_32x",
      "llama-3.1-8b-instruct-andyrdt",
      "goodfire-llama-3.1-8b-instruct",
      "qwen2.5-7b-instruct-andyrdt",
    ]
  ) assert(name in releases, name);
  let rows = 0;
  for (const [name, release] of Object.entries(releases)) {
    assertMatch(release.repo, /^[\w.-]+\/[\w.-]+$/, name);
    assert(release.model.length > 0, name);
    const facts = models[release.model];
    // Every release of these families names a model the table knows the shape of.
    if (/^(gemma-scope|llama_scope|llama-3\.1|goodfire)/.test(name)) assert(facts, `${name}: ${release.model}`);
    const ids = new Set<string>();
    for (const row of release.saes) {
      rows++;
      const [id, layer, path, neuronpedia] = row;
      assert(typeof id === "string" && id.length > 0 && !ids.has(id), `${name}: id ${id}`);
      ids.add(id);
      assert(Number.isInteger(layer) && layer >= 0, `${name}/${id}: layer ${layer}`);
      if (facts) assert(layer < facts.layers, `${name}/${id}: layer ${layer} of ${facts.layers}`);
      // The layer is the number the id itself carries (layer_12/..., l15r_8x, resid_post_layer_3_...).
      assertEquals(Number(/(?:^layer_|^l|_layer_)(\d+)/.exec(id)?.[1]), layer, `${name}/${id}`);
      assert(path === undefined || path === null || (typeof path === "string" && path.length > 0), `${name}/${id}`);
      if (neuronpedia !== undefined) {
        assertMatch(neuronpedia, /^[\w.-]+\/\d+-[\w.-]+$/, `${name}/${id}`);
        assertEquals(Number(/\/(\d+)-/.exec(neuronpedia)![1]), layer, `${name}/${id}: ${neuronpedia}`);
      }
      const resolved = resolveSaeRelease(`${name}/${id}`)!;
      assertEquals([resolved.layer, resolved.model], [layer, release.model]);
    }
  }
  assert(rows > 3000, `${rows} SAEs`);
});

/** repo_id, and per SAE id its path and neuronpedia id, read from verbatim yaml rows. */
function yamlRow(text: string): { release: string; repo: string; id: string; path: string; neuronpedia?: string } {
  const field = (key: string) => new RegExp(`^ +(?:- )?${key}: (.+)$`, "m").exec(text)?.[1];
  return {
    release: /^([\w.-]+):$/m.exec(text)![1],
    repo: field("repo_id")!,
    id: field("id")!,
    path: field("path")!,
    neuronpedia: field("neuronpedia"),
  };
}

Deno.test("release ids resolve to the repository and files SAELens downloads (its yaml rows, its loaders)", () => {
  // Files per loader as sae_lens/loading/pretrained_sae_loaders.py (468b9cc8) downloads them inside the
  // SAE's folder: gemma_2 hf_hub_download(filename="params.npz", subfolder=folder_name) (line 499);
  // llama_scope folder_name + "/hyperparams.json" (829) and final.safetensors in folder_name +
  // "/checkpoints" (911-912); gemma_3 f"{folder_name}/config.json" (596) and params.safetensors (705);
  // dictionary_learning_1 f"{folder_name}/config.json" (952) and f"{folder_name}/ae.pt" (1118).
  const cases: [string, (folder: string) => string[], string][] = [
    [GEMMA_SCOPE_CANONICAL, (f) => [`${f}/params.npz`], "gemmascope"],
    [LLAMA_SCOPE_8X, (f) => [`${f}/hyperparams.json`, `${f}/checkpoints/final.safetensors`], "llamascope"],
    [GEMMA_SCOPE_2, (f) => [`${f}/config.json`, `${f}/params.safetensors`], "gemmascope2"],
    [QWEN_ANDYRDT, (f) => [`${f}/config.json`, `${f}/ae.pt`], "none"],
  ];
  for (const [text, files, format] of cases) {
    const row = yamlRow(text);
    const resolved = resolveSaeRelease(`${row.release}/${row.id}`)!;
    assertEquals(resolved.repo, row.repo, row.release);
    assertEquals(resolved.path, row.path, row.release);
    assertEquals(resolved.hubPath, `${row.repo}/${row.path}`);
    assertEquals(resolved.files, files(row.path), row.release);
    assertEquals(resolved.format ?? "none", format);
    assertEquals(resolved.neuronpedia, row.neuronpedia);
  }
  assertEquals(resolveSaeRelease("gemma-scope-2b-pt-res-canonical/layer_12/width_16k/canonical")!.layer, 12);
  assertEquals(resolveSaeRelease("llama_scope_lxr_8x/l15r_8x")!.layer, 15);
  assertEquals(resolveSaeRelease("gemma-scope-2-4b-pt-res/layer_17_width_16k_l0_medium")!.layer, 17);
  // Not release ids: hub paths and paths pass through.
  assertEquals(resolveSaeRelease("google/gemma-scope-2b-pt-res/layer_12/width_16k/average_l0_82"), undefined);
  assertEquals(resolveSaeRelease("./my-sae"), undefined);
});

Deno.test("an unknown release, an unknown id, a release alone and a left-out release are one line each", () => {
  assertMatch(
    userError(() => resolveSaeRelease("gemma-scope-2b-pt-res-canonicl")),
    /no SAELens release.*did you mean gemma-scope-2b-pt-res-canonical\?/,
  );
  assertMatch(
    userError(() => resolveSaeRelease("llama_scope_lxr_8x/l15r_9x")),
    /release llama_scope_lxr_8x has no SAE l15r_9x \(did you mean l15r_8x\?\); its ids: l0r_8x, /,
  );
  const listing = userError(() => resolveSaeRelease("llama_scope_lxr_32x"));
  assertMatch(listing, /has 32 SAEs; pass --sae llama_scope_lxr_32x\/SAE_ID with one of: l0r_32x, l1r_32x, /);
  assert(listing.endsWith("l31r_32x"), listing);
  assertMatch(userError(() => resolveSaeRelease("gemma-scope-2b-pt-mlp/layer_3/width_16k/canonical")), /MLP SAEs/);
});

Deno.test("a release of another model (width or depth) is refused before any download", async () => {
  const gemma = resolveSaeRelease("gemma-scope-2b-pt-res-canonical/layer_12/width_16k/canonical")!;
  assertMatch(
    userError(() => checkSaeFitsModel(gemma, { dModel: 4096, layers: 32 })),
    /trained on gemma-2-2b \(d_model 2304\) but --base\/--chat have d_model 4096/,
  );
  // Same width, another depth: gemma-2-9b (3584, 42 layers) against a 28-layer model of width 3584.
  const nine = resolveSaeRelease("gemma-scope-9b-pt-res-canonical/layer_20/width_131k/canonical")!;
  assertMatch(userError(() => checkSaeFitsModel(nine, { dModel: 3584, layers: 28 })), /\(42 layers\) but .* 28 layers/);
  checkSaeFitsModel(nine, { dModel: 3584, layers: 42 });
  // loadSae checks before it touches the hub: with no network and an empty cache this is the mismatch line.
  const cache = await tempDir("hub-");
  Deno.env.set("MODEL_DIFF_HUB_CACHE", cache);
  try {
    let message = "";
    await loadSae("llama_scope_lxr_8x/l15r_8x", { dModel: 48, layers: 4 }).catch((e) => (message = e.message));
    assertMatch(message, /trained on meta-llama\/Llama-3.1-8B \(d_model 4096\)/);
    assertEquals([...Deno.readDirSync(cache)], [], "nothing downloaded");
    await loadSae("goodfire-llama-3.1-8b-instruct/layer_19").catch((e) => (message = e.message));
    assertMatch(
      message,
      /Goodfire\/Llama-3.1-8B-Instruct-SAE-l19\/Llama-3.1-8B-Instruct-SAE-l19.pth .* does not load yet/,
    );
  } finally {
    Deno.env.delete("MODEL_DIFF_HUB_CACHE");
  }
});

Deno.test("a release id loads the files SAELens names from the hub cache, with the table's layer and Neuronpedia id", async () => {
  // No network here: the fixture Gemma Scope SAE is put where the download would land, so this checks
  // that the id becomes that folder (google/gemma-scope-2b-pt-res/layer_12/width_16k/average_l0_82).
  const cache = await tempDir("hub-");
  const folder = join(cache, "google/gemma-scope-2b-pt-res/main/layer_12/width_16k/average_l0_82");
  await Deno.mkdir(folder, { recursive: true });
  const fixture = await ensureFixtureSae("tiny-gemma2-sae-gemmascope");
  await Deno.copyFile(join(fixture, "params.npz"), join(folder, "params.npz"));
  Deno.env.set("MODEL_DIFF_HUB_CACHE", cache);
  try {
    const sae = await loadSae("gemma-scope-2b-pt-res-canonical/layer_12/width_16k/canonical");
    const direct = await loadSae(fixture);
    assertEquals(sae.wEnc, direct.wEnc);
    assertEquals(sae.config.format, "gemmascope");
    assertEquals(sae.config.hookLayer, 12);
    assertEquals(sae.config.modelName, "gemma-2-2b");
    assertEquals(sae.config.neuronpediaId, "gemma-2-2b/12-gemmascope-res-16k");
  } finally {
    Deno.env.delete("MODEL_DIFF_HUB_CACHE");
  }
});

Deno.test("diff --sae: an unknown release or id is one line and exit 1, before any model is loaded", async () => {
  for (
    const [sae, pattern] of [
      ["no-such-release", /^error: --sae no-such-release is no SAE directory and no SAELens release/],
      [
        "gemma-scope-2b-pt-res-canonical/layer_99/width_16k/canonical",
        /^error: SAELens release .* has no SAE layer_99/,
      ],
      ["llama_scope_lxr_8x", /^error: SAELens release llama_scope_lxr_8x has 32 SAEs; pass --sae/],
    ] as const
  ) {
    const run = await runScript("diff.ts", ["--sae", sae, "--device", "cpu"]);
    assertEquals(run.code, 1, run.stderr);
    const lines = meaningfulLines(run.stderr);
    assertEquals(lines.length, 1, run.stderr);
    assertMatch(lines[0], pattern);
    assert(!/building|fixture/.test(run.stdout + run.stderr), "no model was touched");
  }
});

Deno.test("diff --sae RELEASE/ID: --layer defaults to the SAE's, and another model's SAE is one line", async () => {
  // The fixture models have 4 layers of width 64: Llama Scope's l15r_8x brings layer 15 as the default,
  // which is out of range for them; at --layer 2 the width (4096 vs 64) is refused before any download.
  const cases: [string[], RegExp][] = [
    [[], /^error: layer 15 is out of range: this model has layers 0\.\.3$/],
    [
      ["--layer", "2"],
      /^error: SAE llama_scope_lxr_8x\/l15r_8x was trained on meta-llama\/Llama-3\.1-8B \(d_model 4096\)/,
    ],
  ];
  for (const [extra, pattern] of cases) {
    const run = await runScript("diff.ts", ["--sae", "llama_scope_lxr_8x/l15r_8x", "--device", "cpu", ...extra], {
      MODEL_DIFF_HUB_CACHE: await tempDir("hub-"),
    });
    assertEquals(run.code, 1, run.stderr);
    const lines = meaningfulLines(run.stderr).filter((line) => !line.startsWith("building"));
    assertEquals(lines.length, 1, run.stderr);
    assertMatch(lines[0], pattern);
  }
});
