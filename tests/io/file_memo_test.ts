import { assert, assertEquals } from "../assert.ts";
import { join } from "node:path";
import { fileMemoRoot, memoByFile, SETTLE_MS } from "../../lib/io/file_memo.ts";
import { tempDir } from "../temp.ts";

const memoDir = await tempDir("file-memo-");
Deno.env.set("MODEL_DIFF_FILE_MEMO", memoDir);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const bytesOf = (text: string) => new TextEncoder().encode(text);

Deno.test("a settled file's fact is computed once, stamped for the next process, and recomputed after any write", async () => {
  assertEquals(fileMemoRoot(), memoDir);
  const dir = await tempDir("file-memo-data-");
  const path = join(dir, "weights.bin");
  await Deno.writeFile(path, bytesOf("AAAA"));
  let computed = 0;
  const read = (p: string) => {
    computed++;
    return Deno.readTextFile(p);
  };
  // A fresh file is read every time: a second write in the same timestamp tick could hide behind it.
  assertEquals(await memoByFile(path, "text", read), "AAAA");
  assertEquals(await memoByFile(path, "text", read), "AAAA");
  assertEquals(computed, 2);
  assertEquals([...Deno.readDirSync(memoDir)].length, 0, "nothing stamped for an unsettled file");

  await sleep(SETTLE_MS + 100);
  assertEquals(await memoByFile(path, "text", read), "AAAA");
  assertEquals(await memoByFile(path, "text", read), "AAAA");
  assertEquals(computed, 3, "settled: computed once");

  // Another process finds the stamp and does not compute (its compute would say so).
  const child = await new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      "--ext=ts",
      `import { memoByFile } from ${JSON.stringify(new URL("../../lib/io/file_memo.ts", import.meta.url).href)};
       console.log(await memoByFile(${JSON.stringify(path)}, "text", () => Promise.resolve("computed")));`,
    ],
    env: { MODEL_DIFF_FILE_MEMO: memoDir },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assertEquals(new TextDecoder().decode(child.stdout).trim(), "AAAA", new TextDecoder().decode(child.stderr));

  // The same size written in place with the mtime set back: the ctime (and the settle rule) catch it.
  const before = await Deno.stat(path);
  await Deno.writeFile(path, bytesOf("AAAB"));
  await Deno.utime(path, before.atime!, before.mtime!);
  assertEquals((await Deno.stat(path)).mtime?.getTime(), before.mtime?.getTime(), "mtime restored");
  assertEquals(await memoByFile(path, "text", read), "AAAB");
  // Another size, and a replaced file (new inode) with the old content's size and mtime.
  await Deno.writeFile(path, bytesOf("AAABC"));
  assertEquals(await memoByFile(path, "text", read), "AAABC");
  const replacement = join(dir, "replacement.bin");
  await Deno.writeFile(replacement, bytesOf("ZZZZZ"));
  await Deno.utime(replacement, before.atime!, before.mtime!);
  await Deno.rename(replacement, path);
  assertEquals(await memoByFile(path, "text", read), "ZZZZZ");
  // Facts of different kinds about one file do not mix.
  assertEquals(await memoByFile(path, "length", (p) => Deno.readFile(p).then((b) => b.length)), 5);
  assert(computed >= 6);
});
