/**
 * The layering of lib/, checked from the source: the import graph has no cycle, each folder imports
 * only folders below it, and the platform-neutral core never reaches a platform API.
 *
 * The layers, bottom to top (each imports only from itself and below):
 *
 *   core      errors, random, small matrix math, the FileSource and ReportOutput seams
 *   io        file formats (safetensors, npz, torch, GGUF, prompts, vectors), digests, atomic writes, cache store,
 *             downloads, the progress bar
 *   graph     ONNX read/write, the graph builder, rewriting (capture, cut, steering), residual location
 *   models    config (per-family facts), checkpoint reading, the decoder graph, model identity, hub resolution, caches
 *   backend   the GPU device (ORT's), onnxruntime-web set-up, device choice
 *   features  statistics, top examples, diff tables, Neuronpedia
 *   sae       SAE formats → one SAE shape, its identity, the FeatureEncoder interface
 *   kernels   one .ts beside each .wgsl
 *   encoders  the encoder on each device (GPU kernels, onnxruntime-node CPU)
 *   runtime   a loaded model handle, chat template and read positions, activations, generation, model pairs
 *   analysis  collection, KL, the activation-difference lens, sweeps and the role swap, crosscoders
 *   report    CSV and HTML pages
 *   run       one run's orchestration on disk (diff runs, dashboards, contrast vectors, vector export)
 *   cli       flag parsing, the command tables, presets
 *   fixtures, bench: development tools above everything (never imported by the layers)
 *
 * Platform-neutral core: what computes takes bytes, arrays, GPU buffers, a FileSource or a ReportOutput
 * (lib/core/), never the file system or the process; the directory-backed sides of those seams, the
 * caches, downloads, onnxruntime-node and model loading are the platform's (see CORE).
 */

import { assert, assertEquals } from "./assert.ts";
import { dirname, join, normalize, relative } from "node:path";
import { fileURLToPath } from "node:url";

const LIB = fileURLToPath(new URL("../lib/", import.meta.url));

/** Bottom to top. */
const LAYERS = [
  "core",
  "io",
  "graph",
  "models",
  "backend",
  "features",
  "sae",
  "kernels",
  "encoders",
  "runtime",
  "analysis",
  "report",
  "run",
  "cli",
  "fixtures",
  "bench",
  "dev",
];

/**
 * The platform-neutral core: modules that must stay free of platform APIs (Deno.*, any node: module,
 * onnxruntime-node), directly or through what they import when they run. What a browser page bundles.
 */
const CORE = [
  ...["errors", "file_source", "matrix", "output", "random", "sha256"].map((m) => `core/${m}.ts`),
  "backend/gpu_info.ts",
  "backend/ort_web.ts",
  ...["checkpoint", "checkpoint_graph", "built_model", "content_identity", "memory", "pair", "short_name"].map((m) =>
    `models/${m}.ts`
  ),
  ...["activation_differences", "collect", "diff_collect", "lens", "role_swap", "stats_file", "steer", "steer_results"]
    .map((m) => `analysis/${m}.ts`),
  "sae/from_files.ts",
  "sae/feature_direction.ts",
  "sae/identity.ts",
  "report/diff.ts",
  "report/dashboard_data.ts",
  ...["finite", "gguf", "npz", "prompt_parse", "safetensors", "vector_names"].map((m) => `io/${m}.ts`),
  ...["builder", "onnx", "residuals", "rewrite", "steering"].map((m) => `graph/${m}.ts`),
  "models/config.ts",
  "models/decoder_graph.ts",
  ...["diff", "neuronpedia", "stats", "top_examples"].map((m) => `features/${m}.ts`),
  ...["config", "feature_encoder", "gemmascope", "gemmascope2", "llamascope", "releases", "saelens"]
    .map((m) => `sae/${m}.ts`),
  ...["cosine_matrix", "feature_stats", "kl_divergence", "sae_encode", "sae_input", "shader", "top_k", "top_rows"]
    .map((m) => `kernels/${m}.ts`),
  "runtime/activations.ts",
  "runtime/handle.ts",
  "runtime/chat.ts",
  "runtime/generation.ts",
  "analysis/kl.ts",
  "analysis/sweep.ts",
  ...["analysis", "config", "encode"].map((m) => `analysis/crosscoder/${m}.ts`),
  ...["adl", "crosscoder", "dashboards", "figures", "kl", "plotly", "sweep"].map((m) => `report/${m}.ts`),
  "run/web_layout.ts",
  "cli/commands.ts",
];

const PLATFORM =
  /\bDeno\.|["']node:[\w/]+["']|["'](?:npm:)?(?:onnxruntime-node|playwright-core)(?:@[^"']*)?["']|\bprocess\.(?:env|exit|argv|pid|kill|cwd)\b/;

async function libFiles(dir = LIB): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) out.push(...await libFiles(path));
    else if (entry.name.endsWith(".ts")) out.push(relative(LIB, path));
  }
  return out.sort();
}

/**
 * Every module's relative imports (static, re-exports and dynamic), as paths under lib/; with
 * `runtimeOnly`, without the type-only ones (erased when the code runs or is bundled).
 */
async function importGraph(runtimeOnly = false): Promise<Map<string, string[]>> {
  const graph = new Map<string, string[]>();
  // `import … from "./x"`, `export … from "./x"`, `import("./x")` and the side-effect `import "./x"`.
  const pattern =
    /(import|export)(\s+type)?\s[^;"]*?from\s+"(\.{1,2}\/[^"]+)"|import\(\s*"(\.{1,2}\/[^"]+)"\s*\)|import\s+"(\.{1,2}\/[^"]+)"/g;
  for (const file of await libFiles()) {
    const source = await Deno.readTextFile(join(LIB, file));
    const specs = [...source.matchAll(pattern)].filter((m) => !(runtimeOnly && m[2])).map((m) => m[3] ?? m[4] ?? m[5]);
    graph.set(file, specs.map((spec) => normalize(join(dirname(file), spec))));
  }
  return graph;
}

/** The cycles of `graph` (one per strongly connected component of more than one module or a self-import). */
function cycles(graph: Map<string, string[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  let next = 0;
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || graph.get(v)!.includes(v)) found.push(component.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

Deno.test("lib/ has no import cycle, and the cycle finder finds one", async () => {
  const graph = await importGraph();
  assert(graph.size > 50, `read ${graph.size} modules`);
  assertEquals(cycles(graph), []);
  // The finder itself: a -> b -> c -> a is one cycle, d alone none.
  const toy = new Map([["a", ["b"]], ["b", ["c"]], ["c", ["a"]], ["d", ["a"]]]);
  assertEquals(cycles(toy), [["a", "b", "c"]]);
});

Deno.test("no module imports a layer above its own, and every module lies in a layer", async () => {
  const rank = (file: string) => LAYERS.indexOf(file.split("/")[0]);
  const upward: string[] = [];
  for (const [file, imports] of await importGraph()) {
    assert(file.includes("/"), `${file} lies at the root of lib/: put it in its layer's folder`);
    assert(rank(file) >= 0, `${file}: folder not in the layer list`);
    for (const target of imports) {
      // Outside lib/ (scripts, tests) is above every layer.
      if (rank(target) > rank(file) || target.startsWith("..")) upward.push(`${file} -> ${target}`);
    }
  }
  assertEquals(upward, []);
});

Deno.test("the platform-neutral core imports no platform API, directly or through what it imports", async () => {
  const graph = await importGraph(true);
  const offending: string[] = [];
  const seen = new Set<string>();
  const walk = async (file: string, via: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    // Type-only imports are erased when the code runs or is bundled: only what remains must be free.
    const source = (await Deno.readTextFile(join(LIB, file))).replace(/^import type [^;]*;$/gm, "");
    const match = source.match(PLATFORM);
    if (match) offending.push(`${file} (${match[0]}, reached from ${via})`);
    for (const target of graph.get(file) ?? []) await walk(target, via);
  };
  for (const file of CORE) {
    assert(graph.has(file), `${file} exists`);
    await walk(file, file);
  }
  assertEquals(offending, []);
});

Deno.test("the page (web/) reaches lib/ only through the platform-neutral core", async () => {
  const web = fileURLToPath(new URL("../web/", import.meta.url));
  const pattern = /(import|export)(\s+type)?\s[^;"]*?from\s+"(\.{1,2}\/[^"]+)"|import\s+"(\.{1,2}\/[^"]+)"/g;
  const outside: string[] = [];
  const visit = async (dir: string) => {
    for await (const entry of Deno.readDir(dir)) {
      const path = join(dir, entry.name);
      if (entry.isDirectory) await visit(path);
      else if (entry.name.endsWith(".ts")) {
        const source = await Deno.readTextFile(path);
        for (const m of source.matchAll(pattern)) {
          if (m[2]) continue; // type-only: erased from the bundle
          const target = normalize(join(dirname(path), m[3] ?? m[4]));
          if (!target.startsWith(LIB)) continue;
          const module = relative(LIB, target);
          if (!CORE.includes(module)) outside.push(`${relative(web, path)} -> lib/${module}`);
        }
      }
    }
  };
  await visit(web);
  assertEquals(outside, []);
});
