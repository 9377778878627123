/**
 * The cache store on hand-made entries whose sizes are known by construction (files of whole 4 KiB
 * blocks): totals count each inode once and only inodes the cache alone holds, eviction goes least
 * recently used first and spares entries in use, and a bad cap is one line.
 */

import { assert, assertEquals, assertMatch } from "../assert.ts";
import { join } from "node:path";
import { UserError } from "../../lib/core/errors.ts";
import {
  CACHE_MAX_ENV,
  cacheCap,
  cacheEntry,
  cacheRoot,
  clearCache,
  enforceCacheCap,
  LAST_USE_FILE,
  listCache,
  parseSize,
  stampFile,
  useEntry,
} from "../../lib/io/cache_store.ts";
import { tempDir } from "../temp.ts";
import { makeEntry } from "./fake_entries.ts";

const KIB = 1024;

/** Points every cache root into a fresh temp dir for the duration of `body`. */
async function withCache(body: (root: string) => Promise<void>): Promise<void> {
  const root = await tempDir("store-");
  Deno.env.set("MODEL_DIFF_CACHE", join(root, "rewritten"));
  Deno.env.set("MODEL_DIFF_CHECKPOINT_CACHE", join(root, "checkpoints"));
  try {
    await body(root);
  } finally {
    for (const name of ["MODEL_DIFF_CACHE", "MODEL_DIFF_CHECKPOINT_CACHE", CACHE_MAX_ENV]) Deno.env.delete(name);
  }
}

/** Disk usage of the stamp files: each is one block on the filesystems we run on. */
async function blocksOf(path: string): Promise<number> {
  return (await Deno.stat(path)).blocks! * 512;
}

Deno.test("sizes: decimal and binary units, bare bytes; a malformed cap is one UserError line", () => {
  assertEquals(parseSize("500MB", "X"), 500e6);
  assertEquals(parseSize("20GB", "X"), 20e9);
  assertEquals(parseSize("1.5GiB", "X"), 1.5 * 2 ** 30);
  assertEquals(parseSize("4096", "X"), 4096);
  assertEquals(parseSize(" 2 tb ", "X"), 2e12);
  for (const bad of ["", "20 GBs", "-1GB", "lots", "1e9"]) {
    Deno.env.set(CACHE_MAX_ENV, bad);
    try {
      cacheCap();
      assert(false, `"${bad}" was accepted`);
    } catch (error) {
      assert(error instanceof UserError, `"${bad}": ${error}`);
      assertMatch(error.message, new RegExp(`^${CACHE_MAX_ENV}=".*" is not a size: use e\\.g\\. 20GB`));
      assert(!error.message.includes("\n"));
    } finally {
      Deno.env.delete(CACHE_MAX_ENV);
    }
  }
  Deno.env.set(CACHE_MAX_ENV, "unlimited");
  assertEquals(cacheCap(), Infinity);
  Deno.env.delete(CACHE_MAX_ENV);
  assertEquals(cacheCap(), 100e9, "the documented default");
});

Deno.test("the total counts a hard-linked file once and a file linked from outside the cache not at all", async () => {
  await withCache(async (root) => {
    const a = await makeEntry(join(cacheRoot("rewritten"), "aaaaaaaaaaaa"), "rewrite.json", 64, 100);
    const b = await makeEntry(join(cacheRoot("checkpoint"), "bbbbbbbbbbbb"), "checkpoint.json", 32, 200);
    // Entry a also links b's data (a rewrite sharing a conversion), and b links a user's file.
    await Deno.link(join(b, "onnx", "data.bin"), join(a, "onnx", "shared.bin"));
    const outside = join(root, "user-model.safetensors");
    await Deno.writeFile(outside, new Uint8Array(128 * KIB).fill(1));
    await Deno.link(outside, join(b, "onnx", "model.safetensors"));
    // A half-built entry of another process is not an entry.
    await Deno.mkdir(join(cacheRoot("rewritten"), "cccccccccccc.123.abcd.tmp"), { recursive: true });

    const stamps = await blocksOf(join(a, "rewrite.json")) + await blocksOf(join(b, "checkpoint.json"));
    const { entries, totalBytes } = await listCache();
    assertEquals(totalBytes, (64 + 32) * KIB + stamps, "64 + 32 KiB of data, the 128 KiB user file not counted");
    assertEquals(entries.map((e) => [e.kind, e.id]), [["checkpoint", "bbbbbbbbbbbb"], ["rewritten", "aaaaaaaaaaaa"]]);
    const [eb, ea] = entries;
    assertEquals(ea.bytes, 64 * KIB + await blocksOf(join(a, "rewrite.json")));
    assertEquals(ea.sharedBytes, 32 * KIB);
    assertEquals(eb.bytes, await blocksOf(join(b, "checkpoint.json")));
    assertEquals(eb.sharedBytes, 32 * KIB);
    assertEquals(ea.source, "/models/aaaaaaaaaaaa");
  });
});

Deno.test("past the cap the least recently used entries go, not those in use or just used by another process", async () => {
  await withCache(async () => {
    const rewritten = cacheRoot("rewritten");
    const oldest = await makeEntry(join(rewritten, "000000000001"), "rewrite.json", 256, 4000);
    const old = await makeEntry(join(rewritten, "000000000002"), "rewrite.json", 256, 3000);
    const middle = await makeEntry(join(cacheRoot("weights"), "000000000003"), "weights.json", 256, 2000);
    const recent = await makeEntry(join(rewritten, "000000000004"), "rewrite.json", 256, 10);
    const mine = await makeEntry(join(rewritten, "000000000005"), "rewrite.json", 256, 5000);
    await useEntry(mine); // this process uses it: kept although it was the least recently used
    const before = await listCache();
    assertEquals(before.entries.length, 5);
    const lastUse = (await Deno.stat(join(mine, LAST_USE_FILE))).mtime!.getTime();
    assert(Date.now() - lastUse < 60_000, "a use records the time");
    // A long run: this process used it hours ago and still holds it; only being in use keeps it now.
    const hoursAgo = new Date(Date.now() - 5000 * 1000);
    await Deno.utime(join(mine, LAST_USE_FILE), hoursAgo, hoursAgo);

    Deno.env.set(CACHE_MAX_ENV, String(before.totalBytes - 300 * KIB));
    const lines: string[] = [];
    const result = await enforceCacheCap({ log: (line) => lines.push(line) });
    assertEquals(result.evicted.map((e) => e.id), ["000000000001", "000000000002"], "two 256 KiB entries free enough");
    for (const dir of [middle, recent, mine]) assert((await Deno.stat(dir)).isDirectory, dir);
    for (const dir of [oldest, old]) assert(!(await Deno.stat(dir).then(() => true, () => false)), dir);
    assertEquals(lines.length, 2);
    assertMatch(
      lines[0],
      /^cache over MODEL_DIFF_CACHE_MAX=.*evicted the least recently used rewritten entry 000000000001/,
    );
    assertEquals(result.totalBytes, (await listCache()).totalBytes, "the predicted total is the real one");

    // Below what the protected entries hold: everything else goes, and the total stays above the cap.
    Deno.env.set(CACHE_MAX_ENV, "1KB");
    const squeezed = await enforceCacheCap();
    assertEquals(squeezed.evicted.map((e) => e.id), ["000000000003"]);
    assertEquals((await listCache()).entries.map((e) => e.id), ["000000000005", "000000000004"], "least recent first");
    assert(squeezed.totalBytes > squeezed.capBytes);
  });
});

Deno.test("evicting an entry whose file another entry links frees only what it alone holds", async () => {
  await withCache(async () => {
    const shared = await makeEntry(join(cacheRoot("weights"), "00000000000a"), "weights.json", 512, 4000);
    const rewrite = await makeEntry(join(cacheRoot("rewritten"), "00000000000b"), "rewrite.json", 8, 100);
    await Deno.link(join(shared, "onnx", "data.bin"), join(rewrite, "onnx", "weights.bin"));
    const { totalBytes } = await listCache();
    Deno.env.set(CACHE_MAX_ENV, String(totalBytes - 1));
    const result = await enforceCacheCap();
    assertEquals(result.evicted.map((e) => e.id), ["00000000000a"]);
    assertEquals(result.evicted[0].bytes, await blocksOf(join(rewrite, "rewrite.json")), "the 512 KiB stay linked");
    assertEquals(result.totalBytes, (await listCache()).totalBytes);
    assertEquals((await Deno.readFile(join(rewrite, "onnx", "weights.bin"))).length, 512 * KIB);
  });
});

Deno.test("cacheEntry: fills once into a temporary sibling, stamps it, reuses it; a failed fill leaves nothing", async () => {
  await withCache(async () => {
    let fills = 0;
    const build = {
      fill: async (temp: string, dir: string) => {
        fills++;
        assert(temp !== dir && temp.startsWith(dir + "."), `filled beside its place: ${temp}`);
        await Deno.writeFile(join(temp, "data.bin"), new Uint8Array(4 * KIB).fill(3));
        return { source: "/models/m", extra: 7 };
      },
    };
    const made = await cacheEntry("rewritten", "0123456789ab", build);
    assertEquals([made.built, made.stamp.extra, fills], [true, 7, 1]);
    const stamp = JSON.parse(await Deno.readTextFile(join(made.dir, stampFile("rewritten"))));
    assertEquals([stamp.source, stamp.extra], ["/models/m", 7]);
    assert((await Deno.stat(join(made.dir, LAST_USE_FILE))).isFile, "marked as used");
    const again = await cacheEntry("rewritten", "0123456789ab", build);
    assertEquals([again.dir, again.built, again.stamp.extra, fills], [made.dir, false, 7, 1], "reused, not refilled");
    assertEquals((await listCache()).entries.map((e) => e.id), ["0123456789ab"]);

    const failing = cacheEntry("checkpoint", "ba9876543210", {
      fill: async (temp) => {
        await Deno.writeFile(join(temp, "half.bin"), new Uint8Array(10));
        throw new UserError("bad input");
      },
    });
    assertEquals(await failing.then(() => "", (e) => e.message), "bad input");
    assertEquals(await Array.fromAsync(Deno.readDir(cacheRoot("checkpoint"))), [], "no entry, no temporary folder");
  });
});

/** The pid of a process that has exited. */
async function deadPid(): Promise<number> {
  const child = new Deno.Command("true").spawn();
  await child.status;
  return child.pid;
}

/** A temporary build folder `<key>.<pid>.<rand>.tmp` holding `kib` KiB. */
async function unfinished(root: string, key: string, pid: number, kib: number): Promise<string> {
  const dir = join(root, `${key}.${pid}.${crypto.randomUUID().slice(0, 8)}.tmp`);
  await Deno.mkdir(join(dir, "onnx"), { recursive: true });
  await Deno.writeFile(join(dir, "onnx", "converted_f32.bin"), new Uint8Array(kib * KIB).fill(9));
  return dir;
}

Deno.test("unfinished builds of dead processes are listed, counted, evicted first and cleared; a live one is never touched", async () => {
  await withCache(async () => {
    const live = new Deno.Command("sleep", { args: ["60"] }).spawn();
    try {
      const root = cacheRoot("checkpoint");
      const entry = await makeEntry(join(root, "aaaaaaaaaaaa"), "checkpoint.json", 64, 100);
      const dead = await unfinished(root, "bbbbbbbbbbbb", await deadPid(), 512);
      const deadShared = await unfinished(cacheRoot("weights"), "cccccccccccc", await deadPid(), 8);
      const alive = await unfinished(root, "dddddddddddd", live.pid, 1024);
      const mine = await unfinished(root, "eeeeeeeeeeee", Deno.pid, 1024);

      const listed = await listCache();
      const orphans = listed.entries.filter((e) => e.unfinished);
      assertEquals(orphans.map((e) => e.dir).sort(), [dead, deadShared].sort(), "only dead processes' builds");
      const big = orphans.find((e) => e.dir === dead)!;
      assertEquals([big.kind, big.bytes, big.unfinished?.key], ["checkpoint", 512 * KIB, "bbbbbbbbbbbb"]);
      assertMatch(big.source, /^unfinished build of process \d+ \(gone\)$/);
      const entryBytes = listed.entries.find((e) => e.dir === entry)!.bytes;
      assertEquals(listed.totalBytes, entryBytes + (512 + 8) * KIB, "counted in the total; live builds are not");

      // Over the cap: the dead build goes before any entry, even one unused for long.
      Deno.env.set(CACHE_MAX_ENV, String(listed.totalBytes - 1));
      const lines: string[] = [];
      const evicted = await enforceCacheCap({ log: (line) => lines.push(line) });
      assertEquals(evicted.evicted.map((e) => e.dir), [dead]);
      assertMatch(
        lines[0],
        /removed bbbbbbbbbbbb\.\d+\.\w+\.tmp, an unfinished checkpoint build of process \d+ \(gone\)/,
      );
      Deno.env.delete(CACHE_MAX_ENV);

      const cleared = await clearCache();
      assertEquals(cleared.removed.map((e) => e.dir).sort(), [entry, deadShared].sort());
      for (const dir of [alive, mine]) {
        assertEquals((await Deno.stat(join(dir, "onnx", "converted_f32.bin"))).size, 1024 * KIB, `untouched: ${dir}`);
      }
    } finally {
      live.kill();
      await live.status;
    }
  });
});

Deno.test("clear by id takes the key's unfinished builds along; an id naming only unfinished builds removes them", async () => {
  await withCache(async () => {
    const root = cacheRoot("rewritten");
    const entry = await makeEntry(join(root, "abcabcabcabc"), "rewrite.json", 8, 100);
    const leftover = await unfinished(root, "abcabcabcabc", await deadPid(), 8);
    const other = await unfinished(root, "f00f00f00f00", await deadPid(), 8);
    const byKey = await clearCache({ ids: ["abcabc"] });
    assertEquals(byKey.removed.map((e) => e.dir).sort(), [entry, leftover].sort());
    const byLeftover = await clearCache({ ids: ["f00f"] });
    assertEquals(byLeftover.removed.map((e) => e.dir), [other]);
    assertEquals((await listCache()).entries, []);
  });
});
