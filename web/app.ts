/// <reference lib="dom" />
/**
 * The page (web/index.html): reads the form, calls the engine (web/engine.ts) and shows what comes
 * back. `document.body.dataset.state` says where it is (loading, idle, running, done, error, nogpu) and
 * `dataset.adapter` which WebGPU adapter it found ("none" without WebGPU), for people and tests alike.
 * Every failure is one line in `#error`: a UserError's message, anything else as "internal error: ...".
 *
 * @module
 */

import { DIFF, DIFF_DEFAULTS, STEER, STEER_DEFAULTS } from "../lib/cli/commands.ts";
import { parseMagnitudes as parseMagFlag } from "../lib/analysis/steer_results.ts";
import { describeError, UserError } from "../lib/core/errors.ts";
import { parsePrompts } from "../lib/io/prompt_parse.ts";
import { readStatsFrom } from "../lib/analysis/stats_file.ts";
import { bytesSource } from "../lib/core/file_source.ts";
import { parseTokenTypes } from "../lib/runtime/chat.ts";
import { engine } from "./engine.ts";
import type {
  ByteStore,
  DiffInputs,
  ModelInput,
  PromptInput,
  RunFile,
  RunUi,
  SaeInput,
  VectorSource,
} from "./engine_api.ts";
import { filesSource, folderName, folderSource } from "./platform/file_source.ts";
import { cacheSize, clearCaches, openStore } from "./platform/opfs.ts";
import { progressBars } from "./platform/progress.ts";

/** The element with id `id`. */
function $<T extends HTMLElement = HTMLInputElement>(id: string): T {
  const element = document.getElementById(id);
  if (!element) throw new Error(`the page has no #${id}`);
  return element as T;
}

const TOKEN_KEY = "model-diff.hf-token";

/** The page's states, as `body[data-state]`. */
type State = "loading" | "idle" | "running" | "done" | "error" | "nogpu";

function setState(state: State): void {
  document.body.dataset.state = state;
}

/** Shows one line of error (empty: hides it). */
function showError(line: string): void {
  const box = $<HTMLParagraphElement>("error");
  box.textContent = line;
  box.title = line;
  box.hidden = !line;
}

/** The one line for any thrown value. */
export function errorLine(error: unknown): string {
  if (error instanceof UserError) return error.message;
  if (error instanceof DOMException && error.name === "AbortError") return "cancelled";
  return `internal error: ${describeError(error)}`;
}

/** One line in the log area. */
function log(line: string): void {
  const area = $<HTMLPreElement>("log");
  area.textContent += `${line}\n`;
  area.scrollTop = area.scrollHeight;
}

/** `bytes` as "12.3 MB". */
function formatBytes(bytes: number): string {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${unit ? value.toFixed(1) : value} ${units[unit]}`;
}

/** The files picked in a file input. */
function picked(id: string): File[] {
  return [...($(id).files ?? [])];
}

/** A model from a folder input or a hub id field; both or neither is a UserError. */
function readModel(prefix: string, what: string): ModelInput {
  const files = picked(`${prefix}-folder`);
  const id = $(`${prefix}-hub`).value.trim();
  if (files.length && id) throw new UserError(`${what}: pick a folder or enter a hub id, not both`);
  if (files.length) return { kind: "files", source: folderSource(files), name: folderName(files)! };
  if (id) return { kind: "hub", id };
  throw new UserError(`${what}: pick its folder or enter its hub id`);
}

/** The SAE from its folder, file(s) or hub field; exactly one must be given. */
function readSae(): SaeInput {
  const folder = picked("sae-folder");
  const files = picked("sae-files");
  const id = $("sae-hub").value.trim();
  if ([folder.length > 0, files.length > 0, id !== ""].filter(Boolean).length > 1) {
    throw new UserError("SAE: give a folder, file(s) or a hub path, only one of them");
  }
  if (folder.length) return { kind: "files", source: folderSource(folder), name: folderName(folder)! };
  if (files.length) return { kind: "files", source: filesSource(files, files[0].name), name: files[0].name };
  if (id) return { kind: "hub", id };
  throw new UserError("SAE: pick its folder or file(s), or enter a hub path or release id");
}

/** The prompts of the picked file or the pasted text; `required` false: undefined when neither is given. */
async function readPrompts(required: boolean): Promise<PromptInput | undefined> {
  const [file] = picked("prompts-file");
  const text = $<HTMLTextAreaElement>("prompts-text").value;
  if (file && text.trim()) throw new UserError("prompts: pick a file or paste them, not both");
  if (file) {
    return { label: file.name, prompts: await parsePrompts(new Uint8Array(await file.arrayBuffer()), file.name) };
  }
  if (text.trim()) {
    return { label: "pasted prompts", prompts: await parsePrompts(new TextEncoder().encode(text), "pasted prompts") };
  }
  if (required) throw new UserError("prompts: pick a prompt file or paste prompts, one per line");
  return undefined;
}

/** An integer field; empty is undefined, anything else not an integer ≥ `min` is a UserError naming it. */
function intField(id: string, name: string, min: number): number | undefined {
  const value = $(id).value.trim();
  if (value === "") return undefined;
  const number = Number(value);
  if (!Number.isInteger(number) || number < min) {
    throw new UserError(
      `${name} must be a whole number${min > 0 ? ` of at least ${min}` : min === 0 ? " ≥ 0" : ""}, not "${value}"`,
    );
  }
  return number;
}

/** An integer field that must be filled in. */
function requiredInt(id: string, name: string, min: number): number {
  const value = intField(id, name, min);
  if (value === undefined) throw new UserError(`${name} is empty: enter a number`);
  return value;
}

/** Magnitudes as "-3,3", parsed as `--mag` is (distinct values, in order). */
function parseMagnitudes(value: string): number[] {
  try {
    return parseMagFlag(value);
  } catch (error) {
    if (!(error instanceof UserError)) throw error;
    throw new UserError(`magnitudes must be comma-separated numbers such as -3,3, not "${value}"`);
  }
}

/** The HF token, saved or forgotten as the "remember" box says. */
function readToken(): string | undefined {
  const token = $("hf-token").value.trim();
  if ($("remember-token").checked && token) localStorage.setItem(TOKEN_KEY, token);
  else localStorage.removeItem(TOKEN_KEY);
  return token || undefined;
}

/** The diff form as the engine's inputs. */
async function readDiffInputs(): Promise<DiffInputs> {
  return {
    base: readModel("base", "base model"),
    chat: readModel("chat", "chat model"),
    sae: readSae(),
    prompts: (await readPrompts(true))!,
    layer: intField("layer", "layer", 0),
    n: intField("n", "n", 1),
    seed: requiredInt("seed", "seed", 0),
    tokenTypes: parseTokenTypes($("token-types").value),
    topK: requiredInt("top-k", "top-k", 1),
    batchSize: requiredInt("batch-size", "batch size", 1),
    checkpointEvery: requiredInt("checkpoint-every", "checkpoint every", 0),
    resumeFrom: await Promise.all(
      picked("resume-files").map(async (file) => ({
        name: file.name,
        bytes: new Uint8Array(await file.arrayBuffer()),
      })),
    ),
    hfToken: readToken(),
  };
}

/** Fills the form with the CLI's defaults (lib/cli/commands.ts) and a remembered token. */
function fillDefaults(): void {
  $("layer").value = String(DIFF_DEFAULTS.layer);
  $("seed").value = DIFF.flags.seed.default;
  $("token-types").value = DIFF.flags["token-types"].default;
  $("top-k").value = String(DIFF_DEFAULTS.topK);
  $("batch-size").value = String(DIFF_DEFAULTS.batchSize);
  $("checkpoint-every").value = String(DIFF_DEFAULTS.checkpointEvery);
  $("steer-mags").value = STEER.flags.mag.default;
  $("steer-greedy").checked = STEER.flags.greedy.default;
  $("steer-seed").value = STEER.flags.seed.default;
  $("steer-max-new-tokens").value = String(STEER_DEFAULTS.maxNewTokens);
  const token = localStorage.getItem(TOKEN_KEY);
  if (token) {
    $("hf-token").value = token;
    $("remember-token").checked = true;
  }
}

/** Finds the WebGPU adapter; without one, says which browsers have WebGPU and keeps Run disabled. */
async function detectWebGpu(): Promise<boolean> {
  const adapter = "gpu" in navigator ? await navigator.gpu.requestAdapter().catch(() => null) : null;
  if (!adapter) {
    document.body.dataset.adapter = "none";
    $("adapter").textContent = "no WebGPU";
    showError(
      (isSecureContext ? "" : "this page is not a secure context (open it over https or from localhost); ") +
        "this browser has no WebGPU: use Chrome or Edge 113+, Safari 26+, Firefox 141+ on Windows, " +
        "or chromium started with --enable-unsafe-webgpu",
    );
    return false;
  }
  const info = adapter.info;
  const name = [info.vendor, info.architecture, info.device].filter(Boolean).join(" ") || "unknown adapter";
  document.body.dataset.adapter = name;
  $("adapter").textContent = `WebGPU: ${name}${info.isFallbackAdapter ? " (software fallback: slow)" : ""}`;
  return true;
}

/** Shows the cache's size beside its button, and the checkpoints it holds as downloads. */
async function showCacheSize(): Promise<void> {
  try {
    $("cache-size").textContent = `cache: ${formatBytes(await cacheSize())}`;
    await showCheckpoints(await openStore("checkpoints"));
  } catch (error) {
    $("cache-size").textContent = `cache unavailable (${describeError(error)})`;
  }
}

let checkpointUrls: string[] = [];

/**
 * Lists the checkpoints kept in `store` as downloads named as `deno task diff` names its own
 * (`checkpoint_{model}.safetensors`: the same format and run fingerprint), with the run and how far it got.
 */
async function showCheckpoints(store: ByteStore): Promise<void> {
  for (const url of checkpointUrls) URL.revokeObjectURL(url);
  checkpointUrls = [];
  const items = [];
  for (const key of await store.keys()) {
    const bytes = await store.get(key);
    const model = /-(base|chat)$/.exec(key)?.[1];
    if (!bytes || !model) continue;
    const name = `checkpoint_${model}.safetensors`;
    const { metadata } = await readStatsFrom(bytesSource(name, bytes), name);
    const url = URL.createObjectURL(new Blob([bytes as Uint8Array<ArrayBuffer>]));
    checkpointUrls.push(url);
    const link = document.createElement("a");
    link.href = url;
    link.download = name;
    link.textContent = `${name} (run ${key.slice(0, 8)}, the ${model} model up to prompt ${metadata.next_prompt})`;
    link.dataset.key = key;
    const item = document.createElement("li");
    item.append(link);
    items.push(item);
  }
  $<HTMLUListElement>("checkpoint-list").replaceChildren(...items);
}

let running: AbortController | undefined;
let blobUrls: string[] = [];

/** Runs `body` as the page's one job: buttons, state, cancel and the one-line error around it. */
async function job(body: (ui: RunUi) => Promise<void>): Promise<void> {
  if (running) return;
  showError("");
  const controller = new AbortController();
  running = controller;
  setState("running");
  $<HTMLButtonElement>("run").disabled = true;
  $<HTMLButtonElement>("generate").disabled = true;
  $<HTMLButtonElement>("cancel").disabled = false;
  const stores = new Map<string, Promise<ByteStore>>();
  const ui: RunUi = {
    progress: progressBars($("progress")),
    log,
    signal: controller.signal,
    cache: (kind) => {
      if (!stores.has(kind)) stores.set(kind, openStore(kind));
      return stores.get(kind)!;
    },
  };
  let end: State = "done";
  try {
    await body(ui);
  } catch (error) {
    const line = controller.signal.aborted ? "cancelled" : errorLine(error);
    showError(line);
    if (!(error instanceof UserError) && !controller.signal.aborted) console.debug(error);
    end = controller.signal.aborted ? "idle" : "error";
  } finally {
    running = undefined;
    $<HTMLButtonElement>("run").disabled = false;
    $<HTMLButtonElement>("generate").disabled = false;
    $<HTMLButtonElement>("cancel").disabled = true;
    // The cache's size and the checkpoints it keeps are shown before the state says the job ended.
    await showCacheSize();
    setState(end);
  }
}

/** Lists `files` as downloads and shows the report page, if among them. */
function showFiles(files: RunFile[], replace: boolean): void {
  const list = $<HTMLUListElement>("downloads");
  if (replace) {
    for (const url of blobUrls) URL.revokeObjectURL(url);
    blobUrls = [];
    list.replaceChildren();
  }
  const blobUrl = (bytes: Uint8Array, type: string) => {
    const url = URL.createObjectURL(new Blob([bytes as Uint8Array<ArrayBuffer>], { type }));
    blobUrls.push(url);
    return url;
  };
  const urls = new Map(files.map((file) => [file.name, blobUrl(file.bytes, file.type)]));
  for (const file of files) {
    const link = document.createElement("a");
    link.href = urls.get(file.name)!;
    link.download = file.name;
    link.textContent = `${file.name} (${formatBytes(file.bytes.length)})`;
    const item = document.createElement("li");
    item.append(link);
    list.append(item);
  }
  const report = files.find((file) => file.name === "feature_increases.html");
  if (report) {
    // Shown from a blob URL, the page's link to the dashboards must name their blob too (the
    // downloaded copy keeps the plain file name, for the folder it is saved into).
    let html = new TextDecoder().decode(report.bytes);
    const dashboards = urls.get("features.html");
    if (dashboards) html = html.replaceAll('href="features.html"', `href="${dashboards}"`);
    const frame = $<HTMLIFrameElement>("report");
    frame.src = blobUrl(new TextEncoder().encode(html), report.type);
    frame.hidden = false;
  }
}

/** The steering table: one row per prompt, one column per magnitude; returns the response cells. */
function steeringTable(prompts: readonly string[], magnitudes: readonly number[]): HTMLTableCellElement[][] {
  const table = $<HTMLTableElement>("steer-output");
  const head = document.createElement("tr");
  for (const title of ["prompt", ...magnitudes.map((m) => `magnitude ${m}`)]) {
    const th = document.createElement("th");
    th.textContent = title;
    head.append(th);
  }
  const cells: HTMLTableCellElement[][] = [];
  const body = prompts.map((prompt) => {
    const tr = document.createElement("tr");
    const label = document.createElement("td");
    label.textContent = prompt;
    tr.append(label);
    cells.push(magnitudes.map(() => {
      const td = document.createElement("td");
      tr.append(td);
      return td;
    }));
    return tr;
  });
  table.replaceChildren(head, ...body);
  return cells;
}

/** The finished steering results (the streamed text replaced by each whole response, as decoded). */
function showSteering(magnitudes: number[], rows: { prompt: string; responses: string[] }[]): void {
  const cells = steeringTable(rows.map((r) => r.prompt), magnitudes);
  rows.forEach((row, r) => row.responses.forEach((text, c) => cells[r][c].textContent = text));
}

function vectorSource(): VectorSource {
  const kind = $<HTMLSelectElement>("steer-source").value;
  if (kind === "sae-feature") {
    return { kind, sae: readSae(), feature: requiredInt("steer-feature", "feature index", 0) };
  }
  if (kind === "adl" || kind === "role-swap") return { kind };
  throw new Error(`unknown vector source ${kind}`);
}

function wire(): void {
  $<HTMLFormElement>("diff-form").addEventListener("submit", (event) => {
    event.preventDefault();
    void job(async (ui) => {
      const inputs = await readDiffInputs();
      $("progress").replaceChildren();
      $("log").textContent = "";
      const files = await engine.runDiff(inputs, ui);
      showFiles(files, true);
    });
  });
  $<HTMLFormElement>("steer-form").addEventListener("submit", (event) => {
    event.preventDefault();
    void job(async (ui) => {
      const vector = vectorSource();
      $("progress").replaceChildren();
      $("log").textContent = "";
      let cells: HTMLTableCellElement[][] = [];
      // Each column fills in as its responses are generated.
      ui.steering = {
        start: (prompts, magnitudes) => cells = steeringTable(prompts, magnitudes),
        text: (row, column, text) => {
          const cell = cells[row]?.[column];
          if (cell) cell.textContent += text;
        },
      };
      const result = await engine.steer({
        model: readModel("chat", "chat model"),
        base: vector.kind === "adl" ? readModel("base", "base model") : undefined,
        layer: intField("steer-layer", "steering layer", 0),
        vector,
        magnitudes: parseMagnitudes($("steer-mags").value),
        greedy: $("steer-greedy").checked,
        prompts: await readPrompts(false),
        seed: requiredInt("steer-seed", "steering seed", 0),
        maxNewTokens: intField("steer-max-new-tokens", "max new tokens", 1),
        hfToken: readToken(),
      }, ui);
      showSteering(result.magnitudes, result.rows);
      showFiles(result.files, false);
    });
  });
  $("steer-source").addEventListener("change", () => {
    $("steer-feature").disabled = $<HTMLSelectElement>("steer-source").value !== "sae-feature";
  });
  $("cancel").addEventListener("click", () => running?.abort(new DOMException("cancelled", "AbortError")));
  $("clear-cache").addEventListener("click", () => {
    if (running) return showError("the cache is in use: cancel the run first");
    void clearCaches().then(showCacheSize, (error) => showError(errorLine(error)));
  });
  $("remember-token").addEventListener("change", () => {
    if (!$("remember-token").checked) localStorage.removeItem(TOKEN_KEY);
  });
  // Anything that still escapes is one line too, never an uncaught console error.
  addEventListener("error", (event) => {
    event.preventDefault();
    showError(errorLine(event.error ?? event.message));
  });
  addEventListener("unhandledrejection", (event) => {
    event.preventDefault();
    showError(errorLine(event.reason));
  });
}

async function main(): Promise<void> {
  wire();
  fillDefaults();
  await showCacheSize();
  if (await detectWebGpu()) {
    $<HTMLButtonElement>("run").disabled = false;
    $<HTMLButtonElement>("generate").disabled = false;
    setState("idle");
  } else {
    setState("nogpu");
  }
}

main().catch((error) => {
  showError(errorLine(error));
  setState("error");
});
