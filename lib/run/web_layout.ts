/**
 * Where the web page's static site keeps its files (built by lib/run/web_site.ts, fetched by the page
 * in web/): the one place both sides read, platform-neutral so the page can bundle it.
 *
 *   index.html, style.css, app.js                     the page (web/)
 *   ort/ort-wasm-simd-threaded.asyncify.{mjs,wasm}    what onnxruntime-web/webgpu fetches (its `wasmPaths`)
 *   plotly-basic.min.js                               inlined into the reports the page writes
 *
 * @module
 */

/** The page's static files, copied from web/ as they are. */
export const STATIC_FILES = ["index.html", "style.css"] as const;

/** The page's bundled script. */
export const APP_SCRIPT = "app.js";

/** The folder of onnxruntime-web's run-time files, relative to the site (the page's `ort.env.wasm.wasmPaths`). */
export const ORT_DIR = "ort/";

/**
 * The onnxruntime-web files the page fetches at run time: the single-threaded WebAssembly build with
 * the WebGPU execution provider (JSEP was replaced by the asyncify build in 1.31).
 */
export const ORT_RUNTIME_FILES = [
  "ort-wasm-simd-threaded.asyncify.mjs",
  "ort-wasm-simd-threaded.asyncify.wasm",
] as const;

/** The folder of our WGSL kernels (shaders/ of the repository), relative to the site. */
export const SHADER_DIR = "shaders/";

/** plotly.js, which the page's report output fetches and inlines into every report. */
export const PLOTLY_FILE = "plotly-basic.min.js";
