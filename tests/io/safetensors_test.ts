import { assert, assertEquals } from "../assert.ts";
import { encodeSafetensors, toFloat32 } from "../../lib/io/safetensors.ts";
import { openSafetensors, writeSafetensors } from "../../lib/io/safetensors_file.ts";
import { UserError } from "../../lib/core/errors.ts";
import { tempFile } from "../temp.ts";

/** A minimal reader written from the format description, independent of lib/io/safetensors.ts. */
function specReader(bytes: Uint8Array) {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  const tensor = (name: string) => {
    const { dtype, shape, data_offsets: [a, b] } = header[name];
    assertEquals(dtype, "F32");
    return { shape, data: new Float32Array(bytes.slice(8 + n + a, 8 + n + b).buffer) };
  };
  return { header, tensor, dataStartAligned: (8 + n) % 8 === 0 };
}

Deno.test("safetensors files follow the spec: a spec-only reader reads what we write", async () => {
  const a = Float32Array.from({ length: 6 }, (_, i) => i * 0.5 - 1);
  const b = new Float32Array([Math.PI]);
  const bytes = encodeSafetensors(
    { a: { dtype: "F32", shape: [2, 3], data: a }, b: { dtype: "F32", shape: [1], data: b } },
    { note: "hello" },
  );
  const read = specReader(bytes);
  assert(read.dataStartAligned, "data starts 8-byte aligned");
  assertEquals(read.header.__metadata__, { note: "hello" });
  assertEquals(read.tensor("a"), { shape: [2, 3], data: a });
  assertEquals(read.tensor("b").data, b);

  const path = await tempFile("test.safetensors");
  await writeSafetensors(path, { a: { dtype: "F32", shape: [2, 3], data: a } }, { k: "v" });
  const file = await openSafetensors(path);
  assertEquals(file.metadata, { k: "v" });
  assertEquals(await file.float32("a"), a);
});

Deno.test("bf16 and f16 convert to the values their bit patterns define", () => {
  // bf16 0x3FC0 = 1.5, 0xC000 = -2; f16 0x3C00 = 1, 0xC500 = -5, 0x3555 ≈ 0.333251953125
  const bf16 = new Uint8Array(new Uint16Array([0x3fc0, 0xc000]).buffer);
  assertEquals([...toFloat32("BF16", bf16, "t")], [1.5, -2]);
  const f16 = new Uint8Array(new Uint16Array([0x3c00, 0xc500, 0x3555]).buffer);
  assertEquals([...toFloat32("F16", f16, "t")], [1, -5, 0.333251953125]);
});

Deno.test("a malformed or missing safetensors file is a user error", async () => {
  const path = await tempFile("test.bin");
  await Deno.writeFile(path, new Uint8Array([255, 255, 255, 255, 0, 0, 0, 0, 1, 2, 3]));
  for (const p of [path, `${path}.missing`]) {
    try {
      await openSafetensors(p);
      throw new Error("expected a failure");
    } catch (error) {
      assert(error instanceof UserError, String(error));
    }
  }
});
