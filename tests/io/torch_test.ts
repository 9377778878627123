import { assertClose, assertEquals, assertMatch } from "../assert.ts";
import { join } from "node:path";
import { readTorchStateDict } from "../../lib/io/torch.ts";
import { UserError } from "../../lib/core/errors.ts";
import { encodeTorchStateDict } from "../../lib/fixtures/torch_save.ts";
import { tempDir } from "../temp.ts";

/**
 * Zips written by Python's own pickle.Pickler (protocols 2 and 4) and zipfile, with stand-ins for
 * torch's globals under their real names (torch._utils._rebuild_tensor_v2, torch.FloatStorage,
 * torch.HalfStorage) and persistent ids as torch.save makes them: state dict {W: f32 [2, 3]
 * = [1.5, -2, 0.25, 3, 4.5, -6], h: f16 [3] = [1, -0.5, 2], s: f32 scalar at offset 5 of W's storage
 * = -6}, with an OrderedDict _metadata state. Made once by a short script; an oracle independent of
 * our writer.
 */
const PYTHON_PICKLES: Record<string, string> = {
  protocol2:
    "UEsDBBQAAAAAANtweV26TDzjWAEAAFgBAAAKAAAAbS9kYXRhLnBrbIACY2NvbGxlY3Rpb25zCk9yZGVyZWREaWN0CnEAKVJxAShYAQAAAFdxAmN0b3JjaC5fdXRpbHMKX3JlYnVpbGRfdGVuc29yX3YyCnEDKChYBwAAAHN0b3JhZ2VxBGN0b3JjaApGbG9hdFN0b3JhZ2UKcQVYAQAAADBxBlgDAAAAY3B1cQdLBnRxCFFLAEsCSwOGcQlLA0sBhnEKiWgAKVJxC3RxDFJxDVgBAAAAaHEOaAMoKGgEY3RvcmNoCkhhbGZTdG9yYWdlCnEPWAEAAAAxcRBoB0sDdHERUUsASwOFcRJLAYVxE4loAClScRR0cRVScRZYAQAAAHNxF2gDKChoBGgFaAZoB0sGdHEYUUsFKSmJaAApUnEZdHEaUnEbdX1xHFgJAAAAX21ldGFkYXRhcR1oAClScR5YAAAAAHEffXEgWAcAAAB2ZXJzaW9ucSFLAXNzc2IuUEsDBBQAAAAAANtweV0A7156GAAAABgAAAAIAAAAbS9kYXRhLzAAAMA/AAAAwAAAgD4AAEBAAACQQAAAwMBQSwMEFAAAAAAA23B5XRwagmgGAAAABgAAAAgAAABtL2RhdGEvMQA8ALgAQFBLAwQUAAAAAADbcHld0Z5nVQIAAAACAAAACQAAAG0vdmVyc2lvbjMKUEsBAhQDFAAAAAAA23B5XbpMPONYAQAAWAEAAAoAAAAAAAAAAAAAAIABAAAAAG0vZGF0YS5wa2xQSwECFAMUAAAAAADbcHldAO9eehgAAAAYAAAACAAAAAAAAAAAAAAAgAGAAQAAbS9kYXRhLzBQSwECFAMUAAAAAADbcHldHBqCaAYAAAAGAAAACAAAAAAAAAAAAAAAgAG+AQAAbS9kYXRhLzFQSwECFAMUAAAAAADbcHld0Z5nVQIAAAACAAAACQAAAAAAAAAAAAAAgAHqAQAAbS92ZXJzaW9uUEsFBgAAAAAEAAQA2wAAABMCAAAAAA==",
  protocol4:
    "UEsDBBQAAAAAANtweV3v8DhSKwEAACsBAAAKAAAAbS9kYXRhLnBrbIAElSABAAAAAAAAjAtjb2xsZWN0aW9uc5SMC09yZGVyZWREaWN0lJOUKVKUKIwBV5SMDHRvcmNoLl91dGlsc5SMEl9yZWJ1aWxkX3RlbnNvcl92MpSTlCgojAdzdG9yYWdllIwFdG9yY2iUjAxGbG9hdFN0b3JhZ2WUk5SMATCUjANjcHWUSwZ0lFFLAEsCSwOGlEsDSwGGlIloAilSlHSUUpSMAWiUaAcoKGgIaAmMC0hhbGZTdG9yYWdllJOUjAExlGgNSwN0lFFLAEsDhZRLAYWUiWgCKVKUdJRSlIwBc5RoBygoaAhoC2gMaA1LBnSUUUsFKSmJaAIpUpR0lFKUdX2UjAlfbWV0YWRhdGGUaAIpUpSMAJR9lIwHdmVyc2lvbpRLAXNzc2IuUEsDBBQAAAAAANtweV0A7156GAAAABgAAAAIAAAAbS9kYXRhLzAAAMA/AAAAwAAAgD4AAEBAAACQQAAAwMBQSwMEFAAAAAAA23B5XRwagmgGAAAABgAAAAgAAABtL2RhdGEvMQA8ALgAQFBLAwQUAAAAAADbcHld0Z5nVQIAAAACAAAACQAAAG0vdmVyc2lvbjMKUEsBAhQDFAAAAAAA23B5Xe/wOFIrAQAAKwEAAAoAAAAAAAAAAAAAAIABAAAAAG0vZGF0YS5wa2xQSwECFAMUAAAAAADbcHldAO9eehgAAAAYAAAACAAAAAAAAAAAAAAAgAFTAQAAbS9kYXRhLzBQSwECFAMUAAAAAADbcHldHBqCaAYAAAAGAAAACAAAAAAAAAAAAAAAgAGRAQAAbS9kYXRhLzFQSwECFAMUAAAAAADbcHld0Z5nVQIAAAACAAAACQAAAAAAAAAAAAAAgAG9AQAAbS92ZXJzaW9uUEsFBgAAAAAEAAQA2wAAAOYBAAAAAA==",
};

for (const [name, base64] of Object.entries(PYTHON_PICKLES)) {
  Deno.test(`torch state dict written by Python's pickler (${name}) reads as its tensors`, async () => {
    const path = join(await tempDir(), "w.pt");
    await Deno.writeFile(path, Uint8Array.from(atob(base64), (c) => c.charCodeAt(0)));
    const tensors = await readTorchStateDict(path);
    assertEquals([...tensors.keys()], ["W", "h", "s"]);
    assertEquals(tensors.get("W")!.shape, [2, 3]);
    assertClose(tensors.get("W")!.data, [1.5, -2, 0.25, 3, 4.5, -6], { rtol: 0, atol: 0 });
    assertClose(tensors.get("h")!.data, [1, -0.5, 2], { rtol: 0, atol: 0 });
    assertEquals(tensors.get("s")!.shape, []);
    assertClose(tensors.get("s")!.data, [-6], { rtol: 0, atol: 0 });
  });
}

Deno.test("our torch.save writer round-trips through the reader; a pickle calling any other global (same length, so the zip stays valid), or not a zip, is one line", async () => {
  const dir = await tempDir();
  const path = join(dir, "cc.pt");
  const w = Float32Array.from({ length: 2 * 3 * 70000 }, (_, i) => (i % 97) - 48);
  await Deno.writeFile(path, encodeTorchStateDict({ W: { shape: [2, 3, 70000], data: w } }));
  const back = await readTorchStateDict(path);
  assertEquals(back.get("W")!.shape, [2, 3, 70000]);
  assertClose(back.get("W")!.data, w, { rtol: 0, atol: 0 });

  const bytes = await Deno.readFile(path);
  const [from, to] = [new TextEncoder().encode("_rebuild_tensor_v2"), new TextEncoder().encode("_rebuild_parameter")];
  const at = bytes.findIndex((_, i) => from.every((c, k) => bytes[i + k] === c));
  bytes.set(to, at);
  const evil = join(dir, "evil.pt");
  await Deno.writeFile(evil, bytes);
  const error = await readTorchStateDict(evil).then(() => undefined, (e) => e);
  assertEquals(error instanceof UserError, true);
  assertMatch(error.message, /^[^\n]*calls torch\._utils\._rebuild_parameter/);

  const notZip = join(dir, "plain.pt");
  await Deno.writeTextFile(notZip, "not a zip");
  const error2 = await readTorchStateDict(notZip).then(() => undefined, (e) => e);
  assertMatch(error2.message, /^[^\n]*is not a torch zip file/);
});
