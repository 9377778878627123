/**
 * A static file server for a built folder (the web page, lib/run/web_site.ts): GET and HEAD of the files
 * under one root, with the MIME types a page needs (`application/wasm` for WebAssembly streaming
 * compilation, `text/javascript` for modules), 404 for anything else, and no way out of the root. It
 * listens on the loopback interface only: a page on `127.0.0.1` is a secure context, so WebGPU and the
 * origin-private file system work without HTTPS.
 *
 * @module
 */

import { extname, join, resolve, sep } from "node:path";
import { UserError } from "../core/errors.ts";

/** MIME type by lower-cased extension; anything else is `application/octet-stream`. */
export const MIME_TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".wasm": "application/wasm",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".txt": "text/plain; charset=utf-8",
};

/** The MIME type of a file name. */
export function mimeType(name: string): string {
  return MIME_TYPES[extname(name).toLowerCase()] ?? "application/octet-stream";
}

/**
 * The file under `root` a URL path names (`/` is `index.html`), or undefined when the path is not a
 * plain relative file path: `..` or `.` segments (also percent-encoded), backslashes, NUL, or a path
 * resolving outside `root`.
 */
export function fileFor(root: string, urlPath: string): string | undefined {
  let path: string;
  try {
    path = decodeURIComponent(urlPath);
  } catch {
    return undefined;
  }
  if (path === "/" || path === "") path = "/index.html";
  if (!path.startsWith("/") || path.includes("\\") || path.includes("\0")) return undefined;
  const segments = path.slice(1).split("/");
  if (segments.some((s) => s === "" || s === "." || s === "..")) return undefined;
  const base = resolve(root);
  const file = resolve(join(base, ...segments));
  return file.startsWith(base + sep) ? file : undefined;
}

/** A request handler serving the files under `root`. */
export function staticHandler(root: string): (request: Request) => Promise<Response> {
  return async (request) => {
    if (request.method !== "GET" && request.method !== "HEAD") {
      return new Response("method not allowed\n", { status: 405, headers: { allow: "GET, HEAD" } });
    }
    const file = fileFor(root, new URL(request.url).pathname);
    const notFound = () =>
      new Response("not found\n", { status: 404, headers: { "content-type": MIME_TYPES[".txt"] } });
    if (!file) return notFound();
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(file);
    } catch {
      return notFound();
    }
    if (!info.isFile) return notFound();
    const headers = {
      "content-type": mimeType(file),
      "content-length": String(info.size),
      "cache-control": "no-cache",
      "x-content-type-options": "nosniff",
    };
    if (request.method === "HEAD") return new Response(null, { headers });
    return new Response((await Deno.open(file)).readable, { headers });
  };
}

/** A running server: its URL, and how to stop it. */
export interface StaticServer {
  url: string;
  port: number;
  /** Stops listening and waits until it has. */
  close(): Promise<void>;
}

/**
 * Serves `root` on 127.0.0.1:`port` (0: any free port). A port already in use, or one this user may
 * not open, is a {@linkcode UserError}.
 */
export function serveStatic(root: string, port: number): StaticServer {
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({ hostname: "127.0.0.1", port, onListen: () => {} }, staticHandler(root));
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) {
      throw new UserError(`port ${port} is already in use: pass another with --port`);
    }
    if (error instanceof Deno.errors.PermissionDenied) {
      throw new UserError(`port ${port} may not be opened by this user: pass one above 1023 with --port`);
    }
    throw error;
  }
  const actual = server.addr.port;
  return {
    url: `http://127.0.0.1:${actual}/`,
    port: actual,
    close: async () => {
      await server.shutdown();
    },
  };
}
