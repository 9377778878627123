/** `deno task cache` as a user runs it, on hand-made entries in a temporary cache. */

import { assert, assertEquals, assertMatch } from "../assert.ts";
import { join } from "node:path";
import { makeEntry } from "../io/fake_entries.ts";
import { meaningfulLines, runScript } from "../helpers.ts";
import { tempDir } from "../temp.ts";

Deno.test("deno task cache lists entries with kind, source, size and last use, and clears by id, age or all", async () => {
  const root = await tempDir("cache-script-");
  const env = { MODEL_DIFF_CACHE: join(root, "rewritten"), MODEL_DIFF_CHECKPOINT_CACHE: join(root, "checkpoints") };
  await makeEntry(join(root, "checkpoints", "c0ffee000000"), "checkpoint.json", 2000, 3 * 86400);
  await makeEntry(join(root, "rewritten", "abcdef000000"), "rewrite.json", 100, 7200);
  await makeEntry(join(root, "rewritten", "shared", "5a5a5a000000"), "weights.json", 300, 300);
  // What a kill -9 during a conversion leaves: a build folder whose process is gone.
  const child = new Deno.Command("true").spawn();
  await child.status;
  const orphan = join(root, "checkpoints", `0dd000000000.${child.pid}.1234abcd.tmp`);
  await Deno.mkdir(join(orphan, "onnx"), { recursive: true });
  await Deno.writeFile(join(orphan, "onnx", "converted_f32.bin"), new Uint8Array(500 * 1024).fill(1));
  const cache = async (args: string[], extra: Record<string, string> = {}) => {
    const result = await runScript("cache.ts", args, { ...env, ...extra });
    return { ...result, lines: result.stdout.trim().split("\n") };
  };

  const listed = await cache([]);
  assertEquals(listed.code, 0, listed.stderr);
  assertMatch(listed.lines[0], /^id\s+kind\s+size\s+shared\s+last use\s+source$/);
  assertMatch(listed.lines[1], /^c0ffee000000\s+checkpoint\s+2\.05 MB\s+-\s+3 d ago\s+\/models\/c0ffee000000$/);
  assertMatch(listed.lines[2], /^abcdef000000\s+rewritten\s+10\d\.\d\d KB\s+-\s+2 h ago\s+\/models\/abcdef000000$/);
  assertMatch(listed.lines[3], /^5a5a5a000000\s+weights\s+31\d\.\d\d KB\s+-\s+5 min ago\s+\/models\/5a5a5a000000$/);
  assertMatch(
    listed.lines[4],
    new RegExp(
      `^0dd000000000\\.${child.pid}\\.1234abcd\\.tmp\\s+checkpoint\\s+51\\d\\.\\d\\d KB\\s+-\\s+\\d+ s ago\\s+` +
        `unfinished build of process ${child.pid} \\(gone\\)$`,
    ),
  );
  assertMatch(
    listed.lines[5],
    /^1 unfinished builds of processes that are gone \(killed mid-build\): deno task cache clear/,
  );
  assertMatch(listed.lines[6], /^total 2\.9\d MB in 4 entries \(MODEL_DIFF_CACHE_MAX 100\.00 GB\)/);

  const byAge = await cache(["clear", "--older-than", "1d"]);
  assertEquals(byAge.lines, ["removed 1 entries, freed 2.05 MB"], byAge.stderr);
  const orphans = await cache(["clear", "0dd"]);
  assertMatch(orphans.stdout, /^removed 1 entries, freed 51\d\.\d\d KB\n$/);
  const byId = await cache(["clear", "5a5a"]);
  assertMatch(byId.stdout, /^removed 1 entries, freed 31\d\.\d\d KB\n$/);
  assert((await Deno.stat(join(root, "rewritten", "abcdef000000"))).isDirectory, "the others stay");
  const all = await cache(["clear"]);
  assertMatch(all.stdout, /^removed 1 entries/);
  assertMatch((await cache(["list"])).stdout, /^the cache is empty\ntotal 0 B in 0 entries/);

  for (
    const [args, extra, pattern] of [
      [[], { MODEL_DIFF_CACHE_MAX: "lots" }, /^error: MODEL_DIFF_CACHE_MAX="lots" is not a size: use e\.g\. 20GB/],
      [["purge"], {}, /^error: unknown action "purge": use deno task cache \[list\] or deno task cache clear/],
      [["clear", "--older-than", "soon"], {}, /^error: --older-than "soon" is not an age: use e\.g\. 30m/],
      [["clear", "ffff"], {}, /^error: no cache entries match "ffff"/],
    ] as const
  ) {
    const bad = await cache([...args], extra);
    assertEquals(bad.code, 1, `${args.join(" ")}: ${bad.stderr}`);
    const lines = meaningfulLines(bad.stderr);
    assertEquals(lines.length, 1, bad.stderr);
    assertMatch(lines[0], pattern);
  }
});
