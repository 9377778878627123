/**
 * Hand-made cache entries whose disk usage is known by construction, for the store and `deno task
 * cache` tests (no model needs building).
 */

import { join } from "node:path";
import { LAST_USE_FILE } from "../../lib/io/cache_store.ts";

/**
 * A complete entry in `dir` with one data file of `kib` KiB (non-zero bytes, so nothing is sparse),
 * the stamp file `stamp` naming source `/models/<id>`, last used `ageS` seconds ago.
 */
export async function makeEntry(dir: string, stamp: string, kib: number, ageS: number): Promise<string> {
  await Deno.mkdir(join(dir, "onnx"), { recursive: true });
  await Deno.writeFile(join(dir, "onnx", "data.bin"), new Uint8Array(kib * 1024).fill(7));
  await Deno.writeTextFile(join(dir, stamp), JSON.stringify({ source: `/models/${dir.split("/").at(-1)}` }));
  await Deno.writeFile(join(dir, LAST_USE_FILE), new Uint8Array());
  const when = new Date(Date.now() - ageS * 1000);
  await Deno.utime(join(dir, LAST_USE_FILE), when, when);
  return dir;
}
