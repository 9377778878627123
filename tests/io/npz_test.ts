import { assertEquals } from "../assert.ts";
import { encodeNpz, readNpz } from "../../lib/io/npz.ts";
import { dirSource } from "../../lib/io/fs_source.ts";
import { tempFile } from "../temp.ts";

/** numpy is the independent reader; a machine without it skips (and reports) this test. */
const hasNumpy = (() => {
  try {
    return new Deno.Command("python3", { args: ["-c", "import numpy"], stderr: "null" }).outputSync().success;
  } catch {
    return false;
  }
})();

const arrays = {
  W: { data: Float32Array.from({ length: 12 }, (_, i) => i / 4 - 1), shape: [3, 4] },
  v: { data: new Float32Array([1.5, -2.25]), shape: [2] },
};

Deno.test("npz round-trips", async () => {
  const path = await tempFile("test.npz");
  await Deno.writeFile(path, encodeNpz(arrays));
  assertEquals(await readNpz(dirSource(""), path), arrays);
});

Deno.test({ name: "numpy reads the npz we write", ignore: !hasNumpy }, async () => {
  const path = await tempFile("test.npz");
  await Deno.writeFile(path, encodeNpz(arrays));
  const python = new Deno.Command("python3", {
    args: [
      "-c",
      `import numpy as n, json; z = n.load(${
        JSON.stringify(path)
      }); print(json.dumps({k: [list(z[k].shape), z[k].ravel().tolist(), str(z[k].dtype)] for k in z.files}))`,
    ],
    stdout: "piped",
    stderr: "piped",
  });
  const { code, stdout, stderr } = await python.output();
  assertEquals(code, 0, new TextDecoder().decode(stderr));
  const seen = JSON.parse(new TextDecoder().decode(stdout));
  assertEquals(seen.W, [[3, 4], [...arrays.W.data], "float32"]);
  assertEquals(seen.v, [[2], [1.5, -2.25], "float32"]);
});
