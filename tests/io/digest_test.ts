import { assert, assertEquals } from "../assert.ts";
import { join } from "node:path";
import { fileIdentity, sha256Hex } from "../../lib/io/digest.ts";
import { saeIdentity } from "../../lib/sae/identity.ts";
import { randomSae } from "../random_sae.ts";
import { tempDir } from "../temp.ts";

Deno.env.set("MODEL_DIFF_FILE_MEMO", await tempDir("identity-memo-"));

const hex = (digest: ArrayBuffer) => [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");

Deno.test("a file's identity is the SHA-256 of every byte: one changed byte past the first read step changes it", async () => {
  const dir = await tempDir("identity-");
  const path = join(dir, "model.onnx_data");
  // Larger than one 8 MiB read step, so the loop over steps is exercised.
  const bytes = new Uint8Array(9 * 1024 * 1024 + 3).map((_, i) => (i * 7) & 255);
  await Deno.writeFile(path, bytes);
  const first = await fileIdentity(path);
  // The reference: WebCrypto's SHA-256 of the whole file at once.
  assertEquals(first.digest, hex(await crypto.subtle.digest("SHA-256", bytes)));
  assertEquals(first.size, bytes.length);
  bytes[8 * 1024 * 1024 + 1] ^= 1;
  await Deno.writeFile(path, bytes);
  assertEquals((await fileIdentity(path)).digest, hex(await crypto.subtle.digest("SHA-256", bytes)));
});

Deno.test("sha256Hex hashes the concatenation of its parts", async () => {
  const expected = hex(await crypto.subtle.digest("SHA-256", new TextEncoder().encode("ab\u00e9c")));
  assertEquals(await sha256Hex(["a", new TextEncoder().encode("b\u00e9"), "c"]), expected);
});

Deno.test("an SAE's identity covers what it computes: a gated SAE's magnitude path, a TopK's k", async () => {
  const gated = randomSae(9, 40, "gated", 1);
  const same = randomSae(9, 40, "gated", 1);
  assertEquals(await saeIdentity(gated), await saeIdentity(same));
  // The first element is always sampled, so changing it must change the digest.
  same.magnitude!.bias[0] += 1;
  assert(await saeIdentity(gated) !== await saeIdentity(same), "b_mag changes the identity");
  const scaled = randomSae(9, 40, "gated", 1);
  scaled.magnitude!.scale[0] *= 2;
  assert(await saeIdentity(gated) !== await saeIdentity(scaled), "r_mag changes the identity");
  const topk = randomSae(9, 40, "topk", 1);
  const otherK = randomSae(9, 40, "topk", 1);
  otherK.config.k = 8;
  assert(await saeIdentity(topk) !== await saeIdentity(otherK), "k changes the identity");
});
