/// <reference lib="dom" />
/**
 * The page's platform modules in headless Chromium (through the probe page, tests/web/probe.ts): the
 * File FileSources read the right bytes of a picked folder and of picked files, the OPFS store keeps
 * values across a reload and leaves no `.tmp` behind, and onnxruntime-web runs on WebGPU from the
 * site's own `ort/` files.
 */

import { assert, assertEquals } from "../assert.ts";
import { join } from "node:path";
import { ORT_DIR, ORT_RUNTIME_FILES } from "../../lib/run/web_layout.ts";
import { tempDir } from "../temp.ts";
import { openSite, pickFolder, waitForState } from "./harness.ts";

type Probe = typeof import("./probe.ts");
declare const probe: Probe extends unknown ? Record<string, (...args: never[]) => unknown> & {
    // deno-lint-ignore no-explicit-any
    [key: string]: any;
  }
  : never;

Deno.test("File FileSources: a picked folder's paths and byte ranges, plain picked files by name", async () => {
  const dir = join(await tempDir("web-folder-"), "my-model");
  await Deno.mkdir(join(dir, "sub"), { recursive: true });
  const bytes = Uint8Array.from({ length: 1000 }, (_, i) => (i * 7) & 255);
  await Deno.writeFile(join(dir, "weights.bin"), bytes);
  await Deno.writeTextFile(join(dir, "sub", "config.json"), '{"a":1}');
  const session = await openSite("probe.html");
  try {
    const { page } = session;
    await waitForState(page, ["idle"]);
    await pickFolder(page, "#folder", dir);
    const seen = await page.evaluate(async () => {
      const files = probe.files("#folder");
      const source = probe.folderSource(files);
      return {
        relative: files.map((f: File) => f.webkitRelativePath).sort(),
        size: await source.size("weights.bin"),
        missing: await source.size("nope.bin"),
        range: [...await source.read("weights.bin", 990, 10)],
        config: new TextDecoder().decode(await source.readAll("sub/config.json", "config")),
        label: source.label("sub/config.json"),
        past: await source.read("weights.bin", 995, 10).then(() => "read", (e: Error) => e.message),
        absent: await source.readAll("nope.bin", "tokenizer").then(() => "read", (e: Error) => e.message),
      };
    });
    assertEquals(seen.relative, ["my-model/sub/config.json", "my-model/weights.bin"]);
    assertEquals(seen.size, 1000);
    assertEquals(seen.missing, undefined);
    assertEquals(seen.range, [...bytes.subarray(990, 1000)]);
    assertEquals(seen.config, '{"a":1}');
    assertEquals(seen.label, "my-model/sub/config.json");
    assertEquals(seen.past, "my-model/weights.bin ends at byte 1000, before byte 1005: the file is truncated");
    assertEquals(seen.absent, "tokenizer not found: my-model/nope.bin");

    await page.locator("#files").setInputFiles([join(dir, "weights.bin"), join(dir, "sub", "config.json")]);
    const plain = await page.evaluate(async () => {
      const source = probe.filesSource(probe.files("#files"), "sae");
      return { range: [...await source.read("weights.bin", 3, 4)], size: await source.size("config.json") };
    });
    assertEquals(plain.range, [...bytes.subarray(3, 7)]);
    assertEquals(plain.size, 7);
    assertEquals(session.errors, []);
  } finally {
    await session.close();
  }
});

Deno.test("OPFS store: put/get/remove/size/clear, no .tmp left behind, contents kept across a reload", async () => {
  const session = await openSite("probe.html");
  try {
    const { page } = session;
    await waitForState(page, ["idle"]);
    const first = await page.evaluate(async () => {
      await probe.clearCaches();
      const store = await probe.openStore("weights");
      await store.put("model/a.bin", new Uint8Array([1, 2, 3]));
      await store.put("b", new Uint8Array(1000));
      await store.put("b", new Uint8Array([9, 9])); // overwrite
      const root = await navigator.storage.getDirectory();
      const dir = await (await root.getDirectoryHandle("model-diff")).getDirectoryHandle("weights");
      const names: string[] = [];
      for await (const name of (dir as unknown as { keys(): AsyncIterable<string> }).keys()) names.push(name);
      const size = await store.size();
      // A .tmp left by a reload mid-write: removed when the store is opened next.
      const stale = await dir.getFileHandle("c.tmp", { create: true });
      const w = await stale.createWritable();
      await w.write(new Uint8Array(5));
      await w.close();
      return {
        a: [...(await store.get("model/a.bin"))!],
        b: [...(await store.get("b"))!],
        none: await store.get("none"),
        size,
        keys: await store.keys(),
        names: names.sort(),
      };
    });
    assertEquals(first.a, [1, 2, 3]);
    assertEquals(first.b, [9, 9]);
    assertEquals(first.none, undefined);
    assertEquals(first.size, 5);
    assertEquals(first.keys, ["b", "model/a.bin"]);
    assert(!first.names.some((n: string) => n.endsWith(".tmp")), `names: ${first.names}`);

    await page.reload();
    await waitForState(page, ["idle"]);
    const second = await page.evaluate(async () => {
      const store = await probe.openStore("weights");
      const kept = [...(await store.get("model/a.bin"))!];
      const root = await navigator.storage.getDirectory();
      const dir = await (await root.getDirectoryHandle("model-diff")).getDirectoryHandle("weights");
      const names: string[] = [];
      for await (const name of (dir as unknown as { keys(): AsyncIterable<string> }).keys()) names.push(name);
      await store.remove("model/a.bin");
      await store.remove("never-there");
      const afterRemove = await store.keys();
      const other = await probe.openStore("checkpoints");
      await other.put("run", new Uint8Array(10));
      const total = await probe.cacheSize();
      await store.clear();
      const afterClear = { keys: await store.keys(), size: await store.size(), total: await probe.cacheSize() };
      await probe.clearCaches();
      return { kept, names, afterRemove, total, afterClear, afterAll: await probe.cacheSize() };
    });
    assertEquals(second.kept, [1, 2, 3]);
    assert(!second.names.some((n: string) => n.endsWith(".tmp")), `stale .tmp removed on open: ${second.names}`);
    assertEquals(second.afterRemove, ["b"]);
    assertEquals(second.total, 12);
    assertEquals(second.afterClear, { keys: [], size: 0, total: 10 });
    assertEquals(second.afterAll, 0);
    assertEquals(session.errors, []);
  } finally {
    await session.close();
  }
});

Deno.test("onnxruntime-web runs a model on the page's WebGPU, fetching only the site's ort/ files", async () => {
  const session = await openSite("probe.html");
  try {
    const { page } = session;
    await waitForState(page, ["idle"]);
    const result = await page.evaluate(() => probe.runMul());
    assertEquals(result.output, [2, 4, 6, 8]);
    const origin = new URL(session.server.url).origin;
    const ort = session.requests.filter((url) => url.includes(`/${ORT_DIR}`)).map((url) =>
      url.slice(origin.length + 1)
    );
    assertEquals(ort.sort(), ORT_RUNTIME_FILES.map((name) => `${ORT_DIR}${name}`).sort());
    assertEquals(session.requests.filter((url) => !url.startsWith(origin)), []);
    assertEquals(session.errors, []);
  } finally {
    await session.close();
  }
});
