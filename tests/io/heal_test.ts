/**
 * A cache that heals itself: every entry is verified against what its stamp recorded of its files
 * before it is trusted, and a damaged one is rebuilt with one line saying so (one row per kind of
 * damage); unfinished builds that killed processes left are removed by the next build of their key,
 * while a live process's never is; a read-only cache whose entries are all present is used as it is.
 */

import { assert, assertEquals, assertMatch } from "../assert.ts";
import { join } from "node:path";
import { ensureFixtureModel } from "../../lib/fixtures/build.ts";
import { modelDirFromCheckpoint } from "../../lib/models/from_checkpoint.ts";
import { rewrittenModel } from "../../lib/models/rewritten.ts";
import { cacheRoot, listCache } from "../../lib/io/cache_store.ts";
import { meaningfulLines, runScript } from "../helpers.ts";
import { tempDir } from "../temp.ts";

/** A copy of a fixture folder (files copied: the cache hard-links them, and nothing here may touch the fixture's). */
async function copyFixture(name: string, into: string): Promise<string> {
  const source = await ensureFixtureModel(name);
  const target = join(into, name);
  await Deno.mkdir(target, { recursive: true });
  for await (const entry of Deno.readDir(source)) {
    if (entry.isFile) await Deno.copyFile(join(source, entry.name), join(target, entry.name));
  }
  return target;
}

/** Cache roots in `dir` for the duration of `body`. */
async function withCache<T>(dir: string, body: () => Promise<T>): Promise<T> {
  Deno.env.set("MODEL_DIFF_CHECKPOINT_CACHE", join(dir, "cache", "checkpoints"));
  Deno.env.set("MODEL_DIFF_CACHE", join(dir, "cache", "rewritten"));
  try {
    return await body();
  } finally {
    Deno.env.delete("MODEL_DIFF_CHECKPOINT_CACHE");
    Deno.env.delete("MODEL_DIFF_CACHE");
  }
}

/** One way an entry gets damaged after it was made, and the reason the rebuild line must give. */
interface Damage {
  name: string;
  /** Damages the built checkpoint entry in `entry` (only files the cache wrote itself). */
  damage: (entry: string) => Promise<void>;
  reason: RegExp;
}

const CONVERTED = join("onnx", "converted_f32.bin");

const DAMAGES: Damage[] = [
  {
    name: "converted weights deleted",
    damage: (entry) => Deno.remove(join(entry, CONVERTED)),
    reason: /onnx\/converted_f32\.bin is missing/,
  },
  {
    name: "converted weights truncated",
    damage: async (entry) => Deno.truncate(join(entry, CONVERTED), (await Deno.stat(join(entry, CONVERTED))).size / 2),
    reason: /onnx\/converted_f32\.bin holds \d+ bytes, \d+ when it was made/,
  },
  {
    // What a crash of the filesystem can leave: the right size, zeros inside. (The check reads a sample
    // of each large file, 16 blocks of 4 KiB: a few bytes changed between its blocks go unseen.)
    name: "converted weights zeroed (same size)",
    damage: async (entry) => {
      const path = join(entry, CONVERTED);
      await Deno.writeFile(path, new Uint8Array((await Deno.stat(path)).size));
    },
    reason: /onnx\/converted_f32\.bin changed since it was made/,
  },
  {
    name: "garbage model.onnx (same size)",
    damage: async (entry) => {
      const path = join(entry, "onnx", "model.onnx");
      await Deno.writeFile(path, new Uint8Array((await Deno.stat(path)).size).fill(0x41));
    },
    reason: /onnx\/model\.onnx changed since it was made/,
  },
  {
    name: "stamp deleted",
    damage: (entry) => Deno.remove(join(entry, "checkpoint.json")),
    reason: /its stamp checkpoint\.json is missing/,
  },
];

for (const d of DAMAGES) {
  Deno.test(`a damaged checkpoint entry (${d.name}) is rebuilt with one line, then trusted again`, async () => {
    const dir = await tempDir("heal-");
    const model = await copyFixture("tiny-gemma2-chat", dir);
    await withCache(dir, async () => {
      const entry = await modelDirFromCheckpoint(model);
      const good = {
        converted: await Deno.readFile(join(entry, CONVERTED)),
        graph: await Deno.readFile(join(entry, "onnx", "model.onnx")),
      };
      await d.damage(entry);
      const lines: string[] = [];
      const again = await modelDirFromCheckpoint(model, { log: (line) => lines.push(line) });
      assertEquals(again, entry, "the same key");
      const damaged = lines.filter((line) => /damaged/.test(line));
      assertEquals(damaged.length, 1, lines.join("\n"));
      assertMatch(damaged[0], new RegExp(`^the cache entry ${entry} is damaged \\(.*\\): rebuilding it$`));
      assertMatch(damaged[0], d.reason);
      assertEquals(await Deno.readFile(join(entry, CONVERTED)), good.converted, "the weights are whole again");
      assertEquals(await Deno.readFile(join(entry, "onnx", "model.onnx")), good.graph);
      const third: string[] = [];
      await modelDirFromCheckpoint(model, { log: (line) => third.push(line) });
      assertEquals(third, [], "a healed entry is trusted");
    });
  });
}

Deno.test("a rewritten entry with a garbage model.onnx is rebuilt with one line", async () => {
  const dir = await tempDir("heal-");
  await withCache(dir, async () => {
    const source = await ensureFixtureModel("tiny-llama-chat-optimum");
    const spec = { capture: [1], cut: true, steering: [] };
    const first = await rewrittenModel(source, spec);
    const graph = join(first.dir, "onnx", "model.onnx");
    const good = await Deno.readFile(graph);
    await Deno.writeFile(graph, new TextEncoder().encode("not a graph"));
    const lines: string[] = [];
    const again = await rewrittenModel(source, spec, { log: (line) => lines.push(line) });
    assertEquals(again, first);
    assertMatch(lines[0], /is damaged \(onnx\/model\.onnx holds 11 bytes, \d+ when it was made\): rebuilding it$/);
    assertEquals(await Deno.readFile(graph), good);
  });
});

/**
 * A copy of the Gemma 2 fixture checkpoint in `dir`, caches of its own under `dir/cache`, and a
 * `capture` of two prompts from it on the CPU into `dir/<out>`.
 */
async function captureSetup(dir: string) {
  const model = await copyFixture("tiny-gemma2-chat", dir);
  const cache = join(dir, "cache");
  const env = {
    MODEL_DIFF_CHECKPOINT_CACHE: join(cache, "checkpoints"),
    MODEL_DIFF_CACHE: join(cache, "rewritten"),
    MODEL_DIFF_FILE_MEMO: join(cache, "file-memo"),
  };
  const prompts = join(dir, "prompts.txt");
  await Deno.writeTextFile(prompts, "Who are you?\nName a river.\n");
  const capture = (out: string) =>
    runScript("capture.ts", [
      ...["--model", model, "--prompts", prompts, "--layers", "1", "--device", "cpu", "--out", join(dir, out)],
    ], env);
  return { env, cache, capture };
}

Deno.test("capture on a checkpoint whose converted weights were truncated: one line, rebuilt, the same result", async () => {
  const dir = await tempDir("heal-");
  const { env, capture } = await captureSetup(dir);
  const clean = await capture("clean.safetensors");
  assertEquals(clean.code, 0, clean.stderr);
  const [entry] = await Array.fromAsync(Deno.readDir(env.MODEL_DIFF_CHECKPOINT_CACHE));
  const weights = join(env.MODEL_DIFF_CHECKPOINT_CACHE, entry.name, CONVERTED);
  await Deno.truncate(weights, 4096);
  const healed = await capture("healed.safetensors");
  assertEquals(healed.code, 0, healed.stderr);
  const said = [...healed.stdout.split("\n"), ...meaningfulLines(healed.stderr)].filter((l) => /damaged/.test(l));
  assertEquals(said.length, 1, healed.stdout + healed.stderr);
  assertMatch(said[0], /converted_f32\.bin holds 4096 bytes, \d+ when it was made\): rebuilding it/);
  assertEquals(
    await Deno.readFile(join(dir, "healed.safetensors")),
    await Deno.readFile(join(dir, "clean.safetensors")),
  );
});

/** The pid of a process that has exited (its number not yet reused). */
async function deadPid(): Promise<number> {
  const child = new Deno.Command("true").spawn();
  await child.status;
  return child.pid;
}

Deno.test("the next build of a key removes what a dead process left of it, never a live process's build", async () => {
  const dir = await tempDir("heal-");
  const model = await copyFixture("tiny-llama-chat", dir);
  await withCache(dir, async () => {
    // The key, from a first build (then removed, as if a kill -9 had stopped it before the rename).
    const entry = await modelDirFromCheckpoint(model);
    await Deno.remove(entry, { recursive: true });
    const root = cacheRoot("checkpoint");
    const key = entry.split("/").at(-1)!;
    const live = new Deno.Command("sleep", { args: ["60"] }).spawn();
    try {
      const dead = join(root, `${key}.${await deadPid()}.0badf00d.tmp`);
      const alive = join(root, `${key}.${live.pid}.0c0ffee0.tmp`);
      const other = join(root, `ffffffffffffffffffffffff.${await deadPid()}.12345678.tmp`);
      for (const tmp of [dead, alive, other]) {
        await Deno.mkdir(join(tmp, "onnx"), { recursive: true });
        await Deno.writeFile(join(tmp, "onnx", "partial.bin"), new Uint8Array(64 * 1024).fill(1));
      }
      const listed = await listCache();
      assertEquals(
        listed.entries.filter((e) => e.unfinished).map((e) => e.dir).sort(),
        [dead, other].sort(),
        "dead processes' builds are listed, the live one is not",
      );
      const lines: string[] = [];
      await modelDirFromCheckpoint(model, { log: (line) => lines.push(line) });
      assertEquals(lines.filter((l) => /unfinished/.test(l)).length, 1, lines.join("\n"));
      assertMatch(
        lines[0],
        new RegExp(`^removed ${dead}, an unfinished build of process \\d+ \\(gone\\), 6\\d\\.\\d\\d KB$`),
      );
      assert(!(await Deno.stat(dead).then(() => true, () => false)), "the dead build is gone");
      assert((await Deno.stat(join(alive, "onnx", "partial.bin"))).isFile, "the live process's build is untouched");
      assert((await Deno.stat(other)).isDirectory, "another key's leftover waits for its own build or cache clear");
    } finally {
      live.kill();
      await live.status;
    }
  });
});

/** Makes `dir` read-only as far as this process can tell: a read-only bind mount as root, else no write permission. */
async function readOnly(dir: string): Promise<() => Promise<void>> {
  if (Deno.uid() === 0) {
    const run = async (...args: string[]) => {
      const { code, stderr } = await new Deno.Command("mount", { args, stderr: "piped" }).output();
      if (code) throw new Error(`mount ${args.join(" ")}: ${new TextDecoder().decode(stderr)}`);
    };
    await run("--bind", dir, dir);
    await run("-o", "remount,bind,ro", dir);
    return async () => {
      await new Deno.Command("umount", { args: [dir] }).output();
    };
  }
  await new Deno.Command("chmod", { args: ["-R", "a-w", dir] }).output();
  return async () => {
    await new Deno.Command("chmod", { args: ["-R", "u+w", dir] }).output();
  };
}

Deno.test("a read-only cache holding every entry is used as it is; a damaged entry in it is one line", async () => {
  const dir = await tempDir("heal-");
  const { env, cache, capture } = await captureSetup(dir);
  assertEquals((await capture("a.safetensors")).code, 0);
  const [entry] = await Array.fromAsync(Deno.readDir(env.MODEL_DIFF_CHECKPOINT_CACHE));
  const restore = await readOnly(cache);
  try {
    const result = await capture("b.safetensors");
    assertEquals(result.code, 0, result.stderr);
    assertEquals(await Deno.readFile(join(dir, "b.safetensors")), await Deno.readFile(join(dir, "a.safetensors")));
  } finally {
    await restore();
  }
  await Deno.truncate(join(env.MODEL_DIFF_CHECKPOINT_CACHE, entry.name, CONVERTED), 4096);
  const restoreAgain = await readOnly(cache);
  try {
    const result = await capture("c.safetensors");
    assertEquals(result.code, 1, result.stderr);
    const lines = meaningfulLines(result.stderr).filter((l) => /^(error|internal error):|^\s+at /.test(l));
    assertEquals(lines.length, 1, result.stderr);
    assertMatch(
      lines[0],
      /^error: the cache folder \S+checkpoints cannot be written \((?:EROFS|permission denied)\) and its entry \w+ is damaged \(onnx\/converted_f32\.bin holds 4096 bytes.*\): make it writable, or set MODEL_DIFF_CHECKPOINT_CACHE/,
    );
  } finally {
    await restoreAgain();
  }
});
