/** The hub FileSource against a stand-in fetch: URLs, Range reads, HEAD sizes, the token, one line per refusal. */

import { assert, assertEquals } from "../assert.ts";
import { UserError } from "../../lib/core/errors.ts";
import { hubSource } from "../../web/platform/hub_source.ts";

const FILE = Uint8Array.from({ length: 100 }, (_, i) => i);

/** A hub holding `org/model/model.safetensors` (and `gated/model` answering 401 without the token "t"). */
function fakeHub(seen: { url: string; headers: Headers; method: string }[]): typeof fetch {
  return (input, init) => {
    const url = String(input);
    const headers = new Headers(init?.headers);
    seen.push({ url, headers, method: init?.method ?? "GET" });
    if (url.includes("/gated/") && headers.get("authorization") !== "Bearer t") {
      return Promise.resolve(new Response("", { status: 401 }));
    }
    if (!url.endsWith("/resolve/main/model.safetensors")) return Promise.resolve(new Response("", { status: 404 }));
    if (init?.method === "HEAD") {
      return Promise.resolve(new Response(null, { headers: { "content-length": String(FILE.length) } }));
    }
    const range = /bytes=(\d+)-(\d+)/.exec(headers.get("range") ?? "");
    if (!range) return Promise.resolve(new Response(FILE));
    const [start, end] = [Number(range[1]), Number(range[2])];
    return Promise.resolve(new Response(FILE.slice(start, end + 1), { status: 206 }));
  };
}

async function userError(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    assert(error instanceof UserError, String(error));
    return error.message;
  }
  throw new Error("no error");
}

Deno.test("hub FileSource: HEAD size, Range reads, the token, and one line for 401 and 404", async () => {
  const seen: { url: string; headers: Headers; method: string }[] = [];
  const source = hubSource("org/model", { fetch: fakeHub(seen) });
  assertEquals(await source.size("model.safetensors"), 100);
  assertEquals(seen[0].url, "https://huggingface.co/org/model/resolve/main/model.safetensors");
  assertEquals(seen[0].method, "HEAD");
  assertEquals([...await source.read("model.safetensors", 10, 5)], [10, 11, 12, 13, 14]);
  assertEquals(seen[1].headers.get("range"), "bytes=10-14");
  assertEquals(seen[1].headers.get("authorization"), null);
  assertEquals((await source.readAll("model.safetensors", "weights")).length, 100);
  assertEquals(await source.size("missing.json"), undefined);
  assertEquals(
    await userError(source.readAll("missing.json", "config")),
    "config not found on the hub: org/model/missing.json",
  );
  assertEquals(
    await userError(source.read("model.safetensors", 95, 10)),
    "org/model/model.safetensors ends before byte 105: the file is truncated",
  );

  const gated = hubSource("gated/model", { fetch: fakeHub(seen) });
  assertEquals(
    await userError(gated.size("model.safetensors")),
    "gated/model is gated or private (HTTP 401): enter an HF_TOKEN with access to it",
  );
  const withToken = hubSource("gated/model", { fetch: fakeHub(seen), token: "t" });
  assertEquals(await withToken.size("model.safetensors"), 100);
  assertEquals(seen.at(-1)!.headers.get("authorization"), "Bearer t");
});
