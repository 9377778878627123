/**
 * Hub downloads against a local server that behaves as the hub can: drops connections mid-file,
 * honours or ignores Range, refuses gated files without a token, or is not there at all.
 */

import { assert, assertBytesEqual, assertEquals, assertMatch } from "../assert.ts";
import { join } from "node:path";
import { UserError } from "../../lib/core/errors.ts";
import { downloadFile } from "../../lib/io/download.ts";
import { SeededRandom } from "../../lib/core/random.ts";
import { tempDir } from "../temp.ts";

const FILE = (() => {
  const random = new SeededRandom(7);
  return Uint8Array.from({ length: 3_000_000 }, () => Math.floor(random.uniform() * 256));
})();
const ETAG = '"abc123"';

interface Seen {
  range: string | null;
  ifRange: string | null;
  authorization: string | null;
}

/** A hub serving FILE as `org/model` `model.safetensors`; the first `drops` responses break off after 100 kB. */
function hub(options: { drops?: number; ignoreRange?: boolean; token?: string }) {
  const seen: Seen[] = [];
  let drops = options.drops ?? 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    const headers = request.headers;
    seen.push({
      range: headers.get("range"),
      ifRange: headers.get("if-range"),
      authorization: headers.get("authorization"),
    });
    if (!new URL(request.url).pathname.endsWith("/org/model/resolve/main/model.safetensors")) {
      return new Response("not found", { status: 404 });
    }
    if (options.token && headers.get("authorization") !== `Bearer ${options.token}`) {
      return new Response("gated", { status: 401 });
    }
    const range = /^bytes=(\d+)-$/.exec(headers.get("range") ?? "");
    const start = range && !options.ignoreRange && headers.get("if-range") === ETAG ? Number(range[1]) : 0;
    const body = FILE.subarray(start);
    const drop = drops-- > 0;
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(drop ? body.subarray(0, 100_000) : body);
        if (drop) setTimeout(() => controller.error(new Error("dropped")), 50);
        else controller.close();
      },
    });
    const responseHeaders: Record<string, string> = { "content-length": String(body.length), etag: ETAG };
    if (start) responseHeaders["content-range"] = `bytes ${start}-${FILE.length - 1}/${FILE.length}`;
    return new Response(stream, { status: start ? 206 : 200, headers: responseHeaders });
  });
  return { seen, endpoint: `http://127.0.0.1:${server.addr.port}`, close: () => server.shutdown() };
}

async function withHub(
  options: Parameters<typeof hub>[0],
  body: (dir: string, seen: Seen[]) => Promise<void>,
): Promise<void> {
  const server = hub(options);
  Deno.env.set("HF_ENDPOINT", server.endpoint);
  try {
    await body(await tempDir("hub-"), server.seen);
  } finally {
    Deno.env.delete("HF_ENDPOINT");
    await server.close();
  }
}

async function userError(run: () => Promise<unknown>): Promise<string> {
  try {
    await run();
  } catch (error) {
    assert(error instanceof UserError, String(error));
    assert(!error.message.includes("\n"), "one line");
    return error.message;
  }
  throw new Error("expected a UserError");
}

Deno.test("a connection dropped mid-file resumes with a Range request; the bytes are the file's", async () => {
  await withHub({ drops: 1 }, async (dir, seen) => {
    await downloadFile("org/model", "main", "model.safetensors", dir, true);
    assertBytesEqual(await Deno.readFile(join(dir, "model.safetensors")), FILE);
    assertEquals(seen.length, 2);
    assertEquals(seen[0].range, null);
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(seen[1].range ?? "")?.[1]);
    assert(resumedAt > 0 && resumedAt <= 100_000, `resumed at ${seen[1].range}`);
    assertEquals(seen[1].ifRange, ETAG);
    assertEquals((await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name), ["model.safetensors"], "no .part left");
  });
});

Deno.test("a download that keeps failing is one line, and the next run resumes from the .part file", async () => {
  await withHub({ drops: 5 }, async (dir, seen) => {
    const message = await userError(() => downloadFile("org/model", "main", "model.safetensors", dir, true));
    assertMatch(message, /^the download of model\.safetensors of org\/model kept failing .*run again to resume/);
    assert((await Deno.stat(join(dir, "model.safetensors.part"))).size > 0);
    await downloadFile("org/model", "main", "model.safetensors", dir, true);
    assertBytesEqual(await Deno.readFile(join(dir, "model.safetensors")), FILE);
    assertMatch(seen.at(-1)!.range ?? "", /^bytes=[1-9]\d*-$/);
  });
});

Deno.test("a server that ignores Range restarts the file cleanly", async () => {
  await withHub({ drops: 1, ignoreRange: true }, async (dir, seen) => {
    await downloadFile("org/model", "main", "model.safetensors", dir, true);
    assertBytesEqual(await Deno.readFile(join(dir, "model.safetensors")), FILE);
    assert(seen[1].range !== null, "Range was asked for");
  });
});

Deno.test("gated: without HF_TOKEN one line saying to set it; with it, sent as Bearer", async () => {
  await withHub({ token: "secret" }, async (dir, seen) => {
    Deno.env.delete("HF_TOKEN");
    const message = await userError(() => downloadFile("org/model", "main", "model.safetensors", dir, true));
    assertMatch(message, /^org\/model refused model\.safetensors \(HTTP 401\): .*set HF_TOKEN/);
    Deno.env.set("HF_TOKEN", "wrong");
    const refused = await userError(() => downloadFile("org/model", "main", "model.safetensors", dir, true));
    assertMatch(refused, /HF_TOKEN was sent, so accept the model's licence/);
    Deno.env.set("HF_TOKEN", "secret");
    try {
      await downloadFile("org/model", "main", "model.safetensors", dir, true);
    } finally {
      Deno.env.delete("HF_TOKEN");
    }
    assertEquals(seen.at(-1)!.authorization, "Bearer secret");
    assertBytesEqual(await Deno.readFile(join(dir, "model.safetensors")), FILE);
    // An optional file the repository lacks is skipped.
    await downloadFile("org/model", "main", "generation_config.json", dir, false);
  });
});

Deno.test("no network: one line", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close(); // nothing listens there now
  Deno.env.set("HF_ENDPOINT", `http://127.0.0.1:${port}`);
  try {
    const dir = await tempDir("hub-");
    const message = await userError(() => downloadFile("org/model", "main", "config.json", dir, true));
    assertMatch(message, /^could not reach the Hugging Face hub for org\/model .*check the network/);
  } finally {
    Deno.env.delete("HF_ENDPOINT");
  }
});
