/**
 * The Hugging Face hub cache layout, as huggingface_hub writes every download: file contents in
 * `models--org--name/blobs/<hash>`, the revision in `refs/main`, and `snapshots/<commit>/<path>` as
 * relative symbolic links into `../../blobs/`. Researchers point the toolkit at the snapshot folder;
 * every task must read, hash and link through those links and compute exactly what it computes on a
 * plain copy of the same files, on its first run (building the caches) and on its second (using them).
 */

import { assert, assertBytesEqual, assertEquals } from "../assert.ts";
import { createHash } from "node:crypto";
import { dirname, join, relative } from "node:path";
import { ensureFixtureModel, ensureFixtureSae } from "../../lib/fixtures/build.ts";
import { SeededRandom } from "../../lib/core/random.ts";
import { runScript } from "../helpers.ts";
import { tempDir } from "../temp.ts";
import { modelDisplayName } from "../../lib/report/plotly.ts";

/** Every regular file under `dir`, as paths relative to it. */
async function filesUnder(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(join(dir, prefix))) {
    const path = join(prefix, entry.name);
    if (entry.isDirectory) out.push(...await filesUnder(dir, path));
    else if (entry.isFile && entry.name !== "fixture.json") out.push(path);
  }
  return out.sort();
}

/**
 * Lays the folder `source` out in `hub` as huggingface_hub caches repository `repo`: returns the
 * snapshot folder, whose files are relative links such as `../../blobs/<sha256>` (one `../` more per
 * subfolder, as huggingface_hub's `_create_symlink` makes them relative to the link's own folder).
 */
async function hubLayout(source: string, hub: string, repo: string): Promise<string> {
  const root = join(hub, `models--${repo.replace("/", "--")}`);
  const commit = createHash("sha1").update(repo).digest("hex");
  await Deno.mkdir(join(root, "blobs"), { recursive: true });
  await Deno.mkdir(join(root, "refs"), { recursive: true });
  await Deno.writeTextFile(join(root, "refs", "main"), commit);
  const snapshot = join(root, "snapshots", commit);
  for (const file of await filesUnder(source)) {
    const bytes = await Deno.readFile(join(source, file));
    const blob = join(root, "blobs", createHash("sha256").update(bytes).digest("hex"));
    await Deno.writeFile(blob, bytes);
    const link = join(snapshot, file);
    await Deno.mkdir(dirname(link), { recursive: true });
    await Deno.symlink(relative(dirname(link), blob), link);
  }
  return snapshot;
}

/** Fresh caches for one set of runs, so the first run builds every entry from the folder it is given. */
async function freshCaches(): Promise<Record<string, string>> {
  const dir = await tempDir("caches-");
  return {
    MODEL_DIFF_CHECKPOINT_CACHE: join(dir, "checkpoints"),
    MODEL_DIFF_CACHE: join(dir, "rewritten"),
    MODEL_DIFF_FILE_MEMO: join(dir, "file-memo"),
  };
}

interface Inputs {
  base: string;
  chat: string;
  sae: string;
  /** A BF16 checkpoint in two shards with an index: converted, and its index followed through a link. */
  steerModel: string;
  /** An ONNX export with external data in `onnx/`: rewritten, its weights linked from the snapshot. */
  export: string;
}

/** The four tasks on `inputs`, small: CPU, three prompts, two generated tokens. */
function tasks(inputs: Inputs, vector: string, prompts: string) {
  return {
    diff: (out: string) => [
      "diff.ts",
      ...["--base", inputs.base, "--chat", inputs.chat, "--sae", inputs.sae, "--layer", "2", "--n", "3"],
      ...["--top-k", "5", "--cards", "0", "--device", "cpu", "--out-dir", out],
    ],
    capture: (out: string) => [
      "capture.ts",
      ...["--model", inputs.chat, "--prompts", prompts, "--layers", "1,2", "--device", "cpu"],
      ...["--out", join(out, "capture.safetensors")],
    ],
    "capture of an export": (out: string) => [
      "capture.ts",
      ...["--model", inputs.export, "--prompts", prompts, "--layers", "2", "--device", "cpu"],
      ...["--out", join(out, "capture.safetensors")],
    ],
    steer: (out: string) => [
      "steer.ts",
      ...["--model", inputs.steerModel, "--vector", vector, "--prompts", prompts, "--layer", "1", "--mag", "3"],
      ...["--greedy", "--max-new-tokens", "2", "--model-short", "m", "--device", "cpu", "--out-dir", out],
    ],
    kl: (out: string) => [
      "kl.ts",
      ...["--base", inputs.base, "--chat", inputs.chat, "--prompts", prompts, "--device", "cpu", "--out-dir", out],
    ],
  };
}

/** The files a run wrote, with every mention of the model folders replaced by their role. */
async function outputs(out: string, inputs: Inputs): Promise<Map<string, Uint8Array>> {
  const result = new Map<string, Uint8Array>();
  for (const file of await filesUnder(out)) {
    let bytes = await Deno.readFile(join(out, file));
    // Longest first: one fixture's folder name can be a prefix of another's. The paths, then the
    // names pages show for them (a folder's name, a snapshot's repository).
    const byLength = (names: [string, string][]) => names.sort(([, a], [, b]) => b.length - a.length);
    const roles = (text: string) =>
      byLength(Object.entries(inputs).map(([role, path]) => [role, modelDisplayName(path)])).reduce(
        (t, [role, name]) => t.replaceAll(name, `<${role}>`),
        byLength(Object.entries(inputs)).reduce((t, [role, path]) => t.replaceAll(path, `<${role}>`), text),
      );
    if (/\.(json|csv|html|txt)$/.test(file)) {
      bytes = new TextEncoder().encode(roles(new TextDecoder().decode(bytes)));
    } else if (file.endsWith(".safetensors")) {
      // The header names the inputs (its padding follows its length); the tensors must be equal byte for byte.
      const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
      const header = new TextEncoder().encode(
        roles(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)).trimEnd()),
      );
      bytes = new Uint8Array([...header, ...bytes.subarray(8 + headerLength)]);
    }
    result.set(file, bytes);
  }
  return result;
}

Deno.test("a symlinked hub snapshot: diff, capture, steer and kl give byte-identical results to the plain folder, twice", async () => {
  const plain: Inputs = {
    base: await ensureFixtureModel("tiny-llama-base"),
    chat: await ensureFixtureModel("tiny-llama-chat"),
    sae: await ensureFixtureSae("tiny-llama-sae-llamascope"),
    steerModel: await ensureFixtureModel("tiny-gemma2-chat"),
    export: await ensureFixtureModel("tiny-llama-chat-optimum"),
  };
  const hub = join(await tempDir("hub-"), "hub");
  const snapshots: Inputs = {
    base: await hubLayout(plain.base, hub, "org/tiny-llama-base"),
    chat: await hubLayout(plain.chat, hub, "org/tiny-llama-chat"),
    sae: await hubLayout(plain.sae, hub, "org/tiny-llama-sae"),
    steerModel: await hubLayout(plain.steerModel, hub, "org/tiny-gemma2-chat"),
    export: await hubLayout(plain.export, hub, "org/tiny-llama-chat-optimum"),
  };
  // The layout is the real one: links, relative, into blobs (the SAE's weights one folder deeper).
  const weights = join(snapshots.sae, "checkpoints", "final.safetensors");
  assert((await Deno.lstat(weights)).isSymlink);
  assert((await Deno.readLink(weights)).startsWith("../../../blobs/"), await Deno.readLink(weights));

  const inputsDir = await tempDir("inputs-");
  const vector = join(inputsDir, "vector.json");
  await Deno.writeTextFile(vector, JSON.stringify([...new SeededRandom(7).normals(48)]));
  const prompts = join(inputsDir, "prompts.txt");
  await Deno.writeTextFile(prompts, "Who are you?\nName a river.\n");

  const plainTasks = tasks(plain, vector, prompts);
  const hubTasks = tasks(snapshots, vector, prompts);
  const plainEnv = await freshCaches();
  const hubEnv = await freshCaches();
  for (const task of Object.keys(plainTasks) as (keyof typeof plainTasks)[]) {
    const expectedDir = await tempDir(`${task}-plain-`);
    const run = await runScript(...splitArgs(plainTasks[task](expectedDir)), plainEnv);
    assertEquals(run.code, 0, `${task} on the plain folders: ${run.stderr}`);
    const expected = await outputs(expectedDir, plain);
    assert(expected.size > 0, `${task} wrote something`);
    for (const attempt of ["first", "second"]) {
      const out = await tempDir(`${task}-hub-`);
      const hubRun = await runScript(...splitArgs(hubTasks[task](out)), hubEnv);
      assertEquals(hubRun.code, 0, `${task} on the snapshot, ${attempt} run: ${hubRun.stderr}`);
      const got = await outputs(out, snapshots);
      assertEquals([...got.keys()], [...expected.keys()], `${task}, ${attempt} run: the same files`);
      for (const [file, bytes] of expected) {
        assertBytesEqual(got.get(file)!, bytes, `${task}, ${attempt} run: ${file}`);
      }
    }
  }
  // Nothing in the caches built from the snapshots is a link back into it (a moved or cleaned hub
  // cache must not break them), and each built checkpoint has its config.
  for (const root of [hubEnv.MODEL_DIFF_CHECKPOINT_CACHE, hubEnv.MODEL_DIFF_CACHE]) {
    for (const file of await filesUnderAll(root)) {
      assert(!(await Deno.lstat(file)).isSymlink, `${file} is not a link`);
    }
  }
  const built = await Array.fromAsync(Deno.readDir(hubEnv.MODEL_DIFF_CHECKPOINT_CACHE));
  assert(built.length >= 3, "the three checkpoints were built");
  for (const entry of built) {
    if (entry.isDirectory) await Deno.stat(join(hubEnv.MODEL_DIFF_CHECKPOINT_CACHE, entry.name, "config.json"));
  }
});

/** Every path (files and links) under `dir`, recursively. */
async function filesUnderAll(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) out.push(...await filesUnderAll(path));
    else out.push(path);
  }
  return out;
}

/** `[script, ...args]` as runScript's two arguments. */
function splitArgs(command: string[]): [string, string[]] {
  return [command[0], command.slice(1)];
}
