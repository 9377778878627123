import { assert, assertEquals } from "../assert.ts";
import { join } from "node:path";
import { renderNormal, tokenizeRendered } from "../../lib/runtime/chat.ts";
import { ensureFixtureModel } from "../../lib/fixtures/build.ts";
import { SeededRandom } from "../../lib/core/random.ts";
import { generateGreedy } from "../../lib/runtime/generation.ts";
import { argmax, fixtureHandle, fixtureReference, meaningfulLines, runScript } from "../helpers.ts";
import { referenceForward } from "../../lib/fixtures/reference.ts";
import { applyIntervention } from "../../lib/graph/steering.ts";
import { tempDir } from "../temp.ts";

const MODEL = "tiny-gemma2-chat";
const PROMPTS = ["Who are you?", "What is your job?"];
const VECTOR = new SeededRandom(7).normals(48);

async function setup() {
  const dir = await tempDir("steer-");
  const vector = join(dir, "vector.json");
  await Deno.writeTextFile(vector, JSON.stringify([...VECTOR]));
  const prompts = join(dir, "prompts.txt");
  await Deno.writeTextFile(prompts, PROMPTS.join("\n"));
  const args = ["--model", await ensureFixtureModel(MODEL), "--vector", vector, "--prompts", prompts, "--layer", "1"];
  return {
    dir,
    args: [...args, "--out-dir", dir, "--device", "cpu"],
    results: join(dir, `${MODEL}_layer1_steer.json`),
  };
}

type Results = Record<string, Record<string, string[]>>;

/** Greedy tokens of the f64 reference forward (no KV cache) with `magnitude`·VECTOR added after layer 1. */
function referenceSteeredGreedy(ids: number[], magnitude: number, steps: number): number[] {
  const { config, weights } = fixtureReference(MODEL);
  const sequence = [...ids];
  for (let step = 0; step < steps; step++) {
    const { logits } = referenceForward(config, weights, sequence, {
      withLogits: true,
      logitsFrom: sequence.length - 1,
      afterLayer: (layer, residual) => {
        if (layer === 1) { for (const x of residual) applyIntervention("addition", x, VECTOR, magnitude); }
      },
    });
    sequence.push(argmax(logits[0]));
  }
  return sequence.slice(ids.length);
}

Deno.test("steer: +c and -c change greedy generations, --baseline reproduces the unsteered model", async () => {
  const { args, results } = await setup();
  const run = await runScript("steer.ts", [
    ...args,
    "--mag",
    "-4,4",
    "--baseline",
    "--greedy",
    "--no-suppress",
    "--max-new-tokens",
    "8",
  ]);
  assertEquals(run.code, 0, run.stderr);
  const data: Results = JSON.parse(await Deno.readTextFile(results));
  const handle = await fixtureHandle(MODEL, "cpu");
  for (const prompt of PROMPTS) {
    assertEquals(Object.keys(data[prompt]).sort(), ["-4", "4", "baseline"]);
    const plain = await generateGreedy(handle, tokenizeRendered(handle, renderNormal(handle, prompt)), 8);
    assertEquals(data[prompt].baseline, [handle.tokenizer.decode(plain, { skip_special_tokens: false })]);
    assert(data[prompt]["4"][0] !== data[prompt].baseline[0], "+c changes the generation");
    assert(data[prompt]["-4"][0] !== data[prompt].baseline[0], "-c changes the generation");
    // Each magnitude with its sign: greedy decoding of the f64 reference with x + c·v after layer 1.
    for (const magnitude of [4, -4]) {
      const tokens = referenceSteeredGreedy(tokenizeRendered(handle, renderNormal(handle, prompt)), magnitude, 8);
      assertEquals(data[prompt][String(magnitude)], [handle.tokenizer.decode(tokens, { skip_special_tokens: false })]);
    }
  }
  const exported = JSON.parse(await Deno.readTextFile(join(results, "..", "swapped_user_role.json")));
  assertEquals(exported.feature_id, -1);
  assertEquals(exported.results[PROMPTS[0]].steering["4"], data[PROMPTS[0]]["4"]);
});

Deno.test("steer: re-running merges into the same JSON without duplicate magnitude keys", async () => {
  const { args, results } = await setup();
  // An earlier run (the notebook's float keys after a reload) left "3.0".
  await Deno.writeTextFile(results, JSON.stringify({ [PROMPTS[0]]: { "3.0": ["old"] } }));
  const run = await runScript("steer.ts", [...args, "--mag", "3", "--max-new-tokens", "4", "--seed", "1"]);
  assertEquals(run.code, 0, run.stderr);
  const data: Results = JSON.parse(await Deno.readTextFile(results));
  assertEquals(Object.keys(data[PROMPTS[0]]), ["3"]);
  assertEquals(data[PROMPTS[0]]["3"].length, 2);
  assertEquals(data[PROMPTS[0]]["3"][0], "old");
  assertEquals(data[PROMPTS[1]]["3"].length, 1);
});

Deno.test("steer: an interrupted run keeps finished responses and --resume completes it", async () => {
  const { args, results } = await setup();
  // On the CPU (args' device): 40 tokens a response keep the run long enough to be killed part-way.
  const full = [...args, "--mag", "2", "--samples", "3", "--max-new-tokens", "40"];
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../../scripts/steer.ts", import.meta.url).pathname, ...full],
    stdout: "null",
    stderr: "null",
  }).spawn();
  // Kill it as soon as the first response is on disk.
  let first: Results | undefined;
  for (let i = 0; i < 600 && !first; i++) {
    await new Promise((r) => setTimeout(r, 100));
    first = await Deno.readTextFile(results).then((t) => JSON.parse(t) as Results, () => undefined);
  }
  child.kill("SIGKILL");
  await child.status;
  assert(first, "a response was written before the kill");
  const saved: Results = JSON.parse(await Deno.readTextFile(results));
  const savedCount = Object.values(saved).flatMap((m) => Object.values(m)).flat().length;
  assert(savedCount >= 1 && savedCount < 6, `interrupted after ${savedCount} of 6 responses`);
  const resumed = await runScript("steer.ts", [...full, "--resume"]);
  assertEquals(resumed.code, 0, resumed.stderr);
  const data: Results = JSON.parse(await Deno.readTextFile(results));
  for (const prompt of PROMPTS) assertEquals(data[prompt]["2"].length, 3);
  for (const [prompt, byMagnitude] of Object.entries(saved)) {
    assertEquals(data[prompt]["2"].slice(0, byMagnitude["2"].length), byMagnitude["2"], "finished responses kept");
  }
});

Deno.test("steer: malformed --mag, layer out of range, wrong-size vector and corrupt JSON give one line", async () => {
  const { dir, args, results } = await setup();
  const wrong = join(dir, "wrong.json");
  await Deno.writeTextFile(wrong, JSON.stringify([1, 2, 3]));
  const cases: [string[], RegExp][] = [
    [["--mag", "3,,x"], /bad --mag value "3,,x"/],
    [["--mag", "3", "--layer", "9"], /layer 9 is out of range: this model has layers 0\.\.3/],
    [["--mag", "3", "--vector", wrong], /has 3 dimensions but the model has d_model 48/],
  ];
  for (const [extra, pattern] of cases) {
    const result = await runScript("steer.ts", [...args, ...extra]);
    assert(result.code !== 0);
    const lines = meaningfulLines(result.stderr);
    assertEquals(lines.length, 1, result.stderr);
    assert(pattern.test(lines[0]), lines[0]);
  }
  await Deno.writeTextFile(results, '{"Who are you?": {"3": ["trunc');
  const corrupt = await runScript("steer.ts", [...args, "--mag", "3"]);
  assert(corrupt.code !== 0);
  assertEquals(meaningfulLines(corrupt.stderr).length, 1, corrupt.stderr);
  assert(/is not valid JSON.*will not be overwritten/.test(corrupt.stderr), corrupt.stderr);
  assertEquals(await Deno.readTextFile(results), '{"Who are you?": {"3": ["trunc');
});

Deno.test("steer --kind ablation: --baseline is the unsteered model (magnitude 0 is not); other settings get their own file", async () => {
  const { dir, args } = await setup();
  try {
    const greedy = ["--greedy", "--no-suppress", "--max-new-tokens", "8"];
    const run = await runScript("steer.ts", [...args, "--kind", "ablation", "--mag", "0", "--baseline", ...greedy]);
    assertEquals(run.code, 0, run.stderr);
    const data: Results = JSON.parse(await Deno.readTextFile(join(dir, `${MODEL}_layer1_ablation_steer.json`)));
    const handle = await fixtureHandle(MODEL, "cpu");
    let ablationChanged = false;
    for (const prompt of PROMPTS) {
      const plain = await generateGreedy(handle, tokenizeRendered(handle, renderNormal(handle, prompt)), 8);
      assertEquals(data[prompt].baseline, [handle.tokenizer.decode(plain, { skip_special_tokens: false })]);
      ablationChanged ||= data[prompt]["0"][0] !== data[prompt].baseline[0];
    }
    assert(ablationChanged, "ablation at magnitude 0 removes the component: not the baseline");
    // The same results file with other generation settings is refused, and left as it was.
    const before = await Deno.readTextFile(join(dir, `${MODEL}_layer1_ablation_steer.json`));
    const other = await runScript("steer.ts", [...args, "--kind", "ablation", "--mag", "0", "--max-new-tokens", "4"]);
    assert(other.code !== 0, "refused");
    const lines = meaningfulLines(other.stderr);
    assertEquals(lines.length, 1, other.stderr);
    assert(/holds responses of another model, vector, intervention or generation setting/.test(lines[0]), lines[0]);
    assertEquals(await Deno.readTextFile(join(dir, `${MODEL}_layer1_ablation_steer.json`)), before);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
