/**
 * The web page as a static site (`deno task web`): web/app.ts bundled for the browser, the page's HTML
 * and CSS, the onnxruntime-web WebAssembly files it loads at run time and plotly.js, in one folder any
 * static host can serve, laid out as lib/run/web_layout.ts says.
 *
 * @module
 */

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { plotlyJsFromNpm } from "../io/dir_output.ts";
import { APP_SCRIPT, ORT_DIR, ORT_RUNTIME_FILES, PLOTLY_FILE, SHADER_DIR, STATIC_FILES } from "./web_layout.ts";

/** The page's sources (web/ at the repository root). */
export const WEB_SOURCES = fileURLToPath(new URL("../../web/", import.meta.url));

/** Options of {@linkcode buildSite}. */
export interface BuildSiteOptions {
  /** The bundle's entry (default web/app.ts); tests bundle extra entries beside it. */
  entries?: { entry: string; out: string }[];
  log?: (line: string) => void;
}

/** Bundles `entry` for the browser into `out` with `deno bundle`; a failure is an Error with its message. */
export async function bundleForBrowser(entry: string, out: string): Promise<void> {
  const root = fileURLToPath(new URL("../..", import.meta.url));
  const result = await new Deno.Command(Deno.execPath(), {
    args: ["bundle", "--quiet", "--platform", "browser", "--format", "esm", "-o", out, entry],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!result.success) {
    const text = new TextDecoder().decode(result.stderr).replaceAll(
      new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, "g"),
      "",
    ).trim();
    throw new Error(`deno bundle ${entry} failed: ${text.split("\n").find((l) => l.trim()) ?? `exit ${result.code}`}`);
  }
}

/** Builds the site into `outDir` (created if missing; files already there are overwritten). */
export async function buildSite(outDir: string, options: BuildSiteOptions = {}): Promise<void> {
  const started = performance.now();
  await Deno.mkdir(join(outDir, ORT_DIR), { recursive: true });
  await Deno.mkdir(join(outDir, SHADER_DIR), { recursive: true });
  const shaders = fileURLToPath(new URL("../../shaders/", import.meta.url));
  const kernels = [...Deno.readDirSync(shaders)].filter((e) => e.isFile && e.name.endsWith(".wgsl")).map((e) => e.name);
  const entries = options.entries ?? [{ entry: join(WEB_SOURCES, "app.ts"), out: APP_SCRIPT }];
  await Promise.all([
    ...entries.map(({ entry, out }) => bundleForBrowser(entry, join(outDir, out))),
    ...STATIC_FILES.map((name) => Deno.copyFile(join(WEB_SOURCES, name), join(outDir, name))),
    ...ORT_RUNTIME_FILES.map((name) =>
      Deno.copyFile(
        fileURLToPath(new URL(name, import.meta.resolve("onnxruntime-web/webgpu"))),
        join(outDir, ORT_DIR, name),
      )
    ),
    ...kernels.map((name) => Deno.copyFile(join(shaders, name), join(outDir, SHADER_DIR, name))),
    plotlyJsFromNpm().then((source) => Deno.writeTextFile(join(outDir, PLOTLY_FILE), source)),
  ]);
  options.log?.(`built the page into ${outDir} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}
