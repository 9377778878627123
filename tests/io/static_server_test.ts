/** The static server of `deno task web`: MIME types, HEAD, 404, no way out of its root, port in use. */

import { assert, assertEquals } from "../assert.ts";
import { join } from "node:path";
import { UserError } from "../../lib/core/errors.ts";
import { fileFor, serveStatic } from "../../lib/io/static_server.ts";
import { tempDir } from "../temp.ts";

Deno.test("static server: MIME types, HEAD, 404, and no path out of the root", async () => {
  const parent = await tempDir("static-");
  const root = join(parent, "site");
  await Deno.mkdir(join(root, "ort"), { recursive: true });
  await Deno.writeTextFile(join(parent, "secret.txt"), "secret");
  const files: Record<string, string> = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "ort/x.mjs": "text/javascript; charset=utf-8",
    "ort/x.wasm": "application/wasm",
    "style.css": "text/css; charset=utf-8",
    "data.bin": "application/octet-stream",
  };
  for (const name of Object.keys(files)) await Deno.writeTextFile(join(root, name), `<${name}>`);
  const server = serveStatic(root, 0);
  try {
    for (const [name, type] of Object.entries(files)) {
      const response = await fetch(new URL(name, server.url));
      assertEquals([response.status, response.headers.get("content-type"), await response.text()], [
        200,
        type,
        `<${name}>`,
      ]);
    }
    const index = await fetch(server.url);
    assertEquals(await index.text(), "<index.html>");
    const head = await fetch(new URL("app.js", server.url), { method: "HEAD" });
    assertEquals([head.status, head.headers.get("content-length"), await head.text()], [200, "8", ""]);
    for (
      const path of [
        "/missing.js",
        "/ort",
        "/ort/",
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/ort/%2E%2E/%2E%2E/secret.txt",
        "/a%5C..%5Csecret.txt",
        "/%00",
      ]
    ) {
      const response = await fetch(server.url.slice(0, -1) + path);
      await response.body?.cancel();
      assertEquals(response.status, 404, path);
    }
    const post = await fetch(server.url, { method: "POST", body: "x" });
    await post.body?.cancel();
    assertEquals(post.status, 405);
    assertEquals(fileFor(root, "/../secret.txt"), undefined);
    assertEquals(fileFor(root, "/%2e%2e/secret.txt"), undefined);
    assertEquals(fileFor(root, "/ort/x.wasm"), join(root, "ort", "x.wasm"));
    // A port already in use is one line.
    let error: unknown;
    try {
      serveStatic(root, server.port);
    } catch (e) {
      error = e;
    }
    assert(error instanceof UserError, String(error));
    assertEquals(error.message, `port ${server.port} is already in use: pass another with --port`);
  } finally {
    await server.close();
  }
});
