/// <reference lib="dom" />
/// <reference lib="dom.asynciterable" />
/**
 * The web page under test: the site built once (lib/run/web_site.ts) into a temporary folder, with the
 * probe page (tests/web/probe.ts: the platform modules on `globalThis.probe`) beside it, served on a
 * free port, and headless Chromium with a WebGPU adapter (SwiftShader). Records every request and every
 * console error and page error; waits on the page's own `body[data-state]`, never on a timeout.
 */

import { type Browser, chromium, type Page } from "playwright-core";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { buildSite } from "../../lib/run/web_site.ts";
import { serveStatic, type StaticServer } from "../../lib/io/static_server.ts";
import { tempDir } from "../temp.ts";

/** Chromium flags giving a headless WebGPU adapter without a GPU. */
export const WEBGPU_ARGS = [
  "--headless=new",
  "--no-sandbox",
  "--enable-unsafe-webgpu",
  "--use-webgpu-adapter=swiftshader",
  "--disable-background-networking",
  "--disable-component-update",
  "--no-first-run",
];

/** The same without WebGPU. */
export const NO_WEBGPU_ARGS = WEBGPU_ARGS.filter((a) => !a.includes("webgpu"));

let site: Promise<string> | undefined;

/** The built site's folder (built once per test process). */
export function builtSite(): Promise<string> {
  site ??= (async () => {
    const dir = await tempDir("web-site-");
    await buildSite(dir, {
      entries: [
        { entry: "web/app.ts", out: "app.js" },
        { entry: fileURLToPath(new URL("probe.ts", import.meta.url)), out: "probe.js" },
      ],
    });
    await Deno.writeTextFile(
      join(dir, "probe.html"),
      '<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><script type="module" src="probe.js"></script>' +
        '<body data-state="loading"><input id="folder" type="file" webkitdirectory><input id="files" type="file" multiple></body>',
    );
    return dir;
  })();
  return site;
}

/** A served site and a browser on it. */
export interface Session {
  server: StaticServer;
  browser: Browser;
  page: Page;
  /** Every URL the page requested. */
  requests: string[];
  /** Console errors and uncaught page errors. */
  errors: string[];
  close(): Promise<void>;
}

/** Serves the site and opens `path` (default the page) in a fresh Chromium. */
export async function openSite(path = "index.html", args = WEBGPU_ARGS): Promise<Session> {
  const server = serveStatic(await builtSite(), 0);
  const browser = await chromium.launch({
    executablePath: Deno.env.get("CHROMIUM_PATH") ?? "/usr/bin/chromium",
    args,
  });
  const page = await browser.newPage();
  const requests: string[] = [];
  const errors: string[] = [];
  page.on("request", (request) => requests.push(request.url()));
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(message.text());
  });
  page.on("pageerror", (error) => errors.push(String(error)));
  await page.goto(new URL(path, server.url).href, { waitUntil: "load" });
  return {
    server,
    browser,
    page,
    requests,
    errors,
    close: async () => {
      await browser.close();
      await server.close();
    },
  };
}

/** Waits until `body[data-state]` is one of `states` and returns it. */
export async function waitForState(page: Page, states: string[], timeout = 60_000): Promise<string> {
  await page.waitForFunction(
    (wanted) => wanted.includes(document.body?.dataset.state ?? ""),
    states,
    { timeout },
  );
  return await page.evaluate(() => document.body.dataset.state!);
}

/**
 * Picks folder `dir` in the `<input webkitdirectory>` matching `selector`: playwright-core (1.65) takes
 * a directory path for such an input and gives each file its `webkitRelativePath` (`<dir name>/<path>`).
 */
export async function pickFolder(page: Page, selector: string, dir: string): Promise<void> {
  await page.locator(selector).setInputFiles(dir);
}

/** The page's downloads: name → bytes (read back from their blob URLs). */
export async function downloads(page: Page): Promise<Map<string, Uint8Array>> {
  const files = await page.evaluate(async () => {
    const links = [...document.querySelectorAll<HTMLAnchorElement>("#downloads a")];
    return await Promise.all(links.map(async (a) => {
      const bytes = new Uint8Array(await (await fetch(a.href)).arrayBuffer());
      return [a.download, Array.from(bytes)] as [string, number[]];
    }));
  });
  return new Map(files.map(([name, bytes]) => [name, new Uint8Array(bytes)]));
}

/** The checkpoint files the page holds, as `name: size` (a `.tmp` a reload left is not one). */
export function checkpoints(page: Page): Promise<string[]> {
  return page.evaluate(async () => {
    const root = await navigator.storage.getDirectory();
    const dir = await (await root.getDirectoryHandle("model-diff", { create: true }))
      .getDirectoryHandle("checkpoints", { create: true });
    const out: string[] = [];
    for await (const [name, handle] of dir.entries()) {
      if (!name.endsWith(".tmp")) out.push(`${name}: ${(await (handle as FileSystemFileHandle).getFile()).size}`);
    }
    return out.sort();
  });
}

/** Waits until the chat model's progress row shows some but not all prompts done; how many of how many. */
export async function chatUnderway(page: Page): Promise<[number, number]> {
  const handle = await page.waitForFunction(
    () => {
      const row = document.querySelector<HTMLElement>('.progress-row[data-label="chat model"]');
      const done = Number(row?.dataset.done ?? 0);
      const total = Number(row?.dataset.total ?? 0);
      // A finished row is the last run's, not yet replaced.
      return done > 0 && done < total ? [done, total] : false;
    },
    undefined,
    { timeout: 300_000, polling: 10 },
  );
  return await handle.jsonValue() as [number, number];
}
