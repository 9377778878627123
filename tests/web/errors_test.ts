/// <reference lib="dom" />
/// <reference lib="dom.asynciterable" />
/**
 * What the page says when a diff cannot run, one case per row, in one page session: each bad input is
 * exactly one line in `#error` (the core's UserError message), the page ends in state "error" with Run
 * enabled again, nothing reaches the console, and the origin-private file system holds what it held
 * before: a checkpoint of another run stays, untouched, nothing half-written (`.tmp`) appears, and the
 * one thing a failed run may add is the complete build (graph and its record) of a model that built
 * fine before the failure (the SAE case, which fails after both models are built).
 *
 * The too-large model is a folder of just config.json (Llama 3.1 405B's shapes) and a safetensors file
 * that is a header alone: any read of a tensor would be "truncated", so the line proves the page refused
 * it from config.json before building or loading anything.
 */

import { assert, assertEquals } from "../assert.ts";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { tempDir } from "../temp.ts";
import { ensureFixtureModel, ensureFixtureSae } from "../../lib/fixtures/build.ts";
import { decoderConfigFromHf } from "../../lib/models/config.ts";
import { estimateModelMemory, type GpuBufferLimits, gpuMemoryProblem } from "../../lib/models/memory.ts";
import { openSite, pickFolder, waitForState } from "./harness.ts";

/** Every file under the page's origin-private root, as `path: size`. */
function opfsFiles(page: Page): Promise<string[]> {
  return page.evaluate(async () => {
    const out: string[] = [];
    const walk = async (dir: FileSystemDirectoryHandle, prefix: string) => {
      for await (const [name, handle] of dir.entries()) {
        if (handle.kind === "directory") await walk(handle as FileSystemDirectoryHandle, `${prefix}${name}/`);
        else out.push(`${prefix}${name}: ${(await (handle as FileSystemFileHandle).getFile()).size}`);
      }
    };
    await walk(await navigator.storage.getDirectory(), "");
    return out.sort();
  });
}

/** A copy of folder `from` named `name`, `change` applied to the copy. */
async function copyFolder(from: string, name: string, change: (dir: string) => Promise<void>): Promise<string> {
  const dir = join(await tempDir("case-"), name);
  await Deno.mkdir(dir);
  for await (const entry of Deno.readDir(from)) {
    if (entry.isFile) await Deno.copyFile(join(from, entry.name), join(dir, entry.name));
  }
  await change(dir);
  return dir;
}

/** A safetensors file that is its header alone: `tensors` declared, none of their bytes present. */
function headerOnly(tensors: Record<string, number[]>): Uint8Array {
  let offset = 0;
  const header: Record<string, unknown> = {};
  for (const [name, shape] of Object.entries(tensors)) {
    const bytes = shape.reduce((a, b) => a * b, 4);
    header[name] = { dtype: "F32", shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  return out;
}

/** One bad input: what to pick or type, and the page's exact line. */
interface Case {
  name: string;
  base?: string;
  chat?: string;
  sae?: string;
  promptsFile?: string;
  promptsText?: string;
  line: string;
  /** The case fails after both models are built: their builds (model-diff/graphs/) may be kept. */
  builds?: true;
}

Deno.test("each bad input is one line in the page, no console error, nothing but whole builds added to the origin-private storage", async () => {
  const [base, chat, gemmaChat, sae] = [
    await ensureFixtureModel("tiny-llama-base"),
    await ensureFixtureModel("tiny-llama-chat"),
    await ensureFixtureModel("tiny-gemma2-chat"),
    await ensureFixtureSae("tiny-llama-sae-llamascope"),
  ];
  const llamaConfig = JSON.parse(await Deno.readTextFile(join(base, "config.json")));
  // Llama 3.1 405B's shapes (its embedding alone is 7.8 GiB in F32).
  const hugeConfig = {
    ...llamaConfig,
    hidden_size: 16384,
    intermediate_size: 53248,
    num_hidden_layers: 126,
    num_attention_heads: 128,
    num_key_value_heads: 8,
    head_dim: 128,
  };
  const huge = join(await tempDir("huge-"), "llama-405b-shapes");
  await Deno.mkdir(huge);
  await Deno.writeTextFile(join(huge, "config.json"), JSON.stringify(hugeConfig));
  await Deno.writeFile(
    join(huge, "model.safetensors"),
    headerOnly({ "model.embed_tokens.weight": [128256, 16384], "model.norm.weight": [16384] }),
  );
  const truncated = await copyFolder(base, "truncated-base", async (dir) => {
    const file = join(dir, "model.safetensors");
    await Deno.truncate(file, Math.floor((await Deno.stat(file)).size / 2));
  });
  const badJson = await copyFolder(
    base,
    "bad-json-base",
    (dir) => Deno.writeTextFile(join(dir, "config.json"), "{not json"),
  );
  const saeNoWeights = await copyFolder(sae, "sae-no-weights", () => Promise.resolve());
  const prompts = join(await tempDir("prompts-"), "prompts.txt");
  await Deno.writeTextFile(prompts, "What is the capital of France?\nName a prime number.\n");
  const emptyPrompts = join(await tempDir("prompts-"), "empty.txt");
  await Deno.writeFile(emptyPrompts, new Uint8Array());
  const binaryPrompts = join(await tempDir("prompts-"), "weights.txt");
  await Deno.writeFile(binaryPrompts, new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]));

  const session = await openSite();
  try {
    const { page } = session;
    assertEquals(await waitForState(page, ["idle", "nogpu", "error"]), "idle");
    // The limits the page's device has (onnxruntime-web asks the adapter for its own); SwiftShader is a
    // software adapter, so the graph is fp32.
    const limits: GpuBufferLimits = await page.evaluate(async () => {
      const adapter = (await navigator.gpu.requestAdapter({ powerPreference: "high-performance" }))!;
      return {
        maxBufferSize: adapter.limits.maxBufferSize,
        maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
      };
    });
    const hugeLine = gpuMemoryProblem(
      "the base model llama-405b-shapes",
      estimateModelMemory(decoderConfigFromHf(hugeConfig, "config.json"), "fp32"),
      limits,
    );
    assert(hugeLine, `SwiftShader's limits hold a 7.8 GiB tensor: ${JSON.stringify(limits)}`);
    const good = { base, chat, sae, promptsFile: prompts };
    const cases: Case[] = [
      { name: "a model too large for the GPU", ...good, base: huge, line: hugeLine },
      {
        name: "a truncated safetensors file",
        ...good,
        base: truncated,
        line: "truncated-base/model.safetensors is not a valid safetensors file (its tensors need 66259200 bytes " +
          "of data but it holds 33127516: truncated): download or save it again",
      },
      {
        name: "config.json that is not JSON",
        ...good,
        base: badJson,
        // Chromium's V8 message for JSON.parse.
        line: "bad-json-base/config.json is not valid JSON (Expected property name or '}' in JSON at position 1 " +
          "(line 1 column 2))",
      },
      {
        name: "an SAE folder without its weights",
        ...good,
        sae: saeNoWeights,
        builds: true,
        line: "sae-no-weights looks like llamascope but has no checkpoints/final.safetensors",
      },
      {
        name: "a mismatched pair",
        ...good,
        chat: gemmaChat,
        line: "the base and chat models differ (model_type llama vs gemma2, hidden size 64 vs 48, vocabulary 128256 " +
          "vs 256000): a diff needs two versions of one model",
      },
      {
        name: "no prompts pasted",
        ...good,
        promptsFile: undefined,
        promptsText: " \n \n",
        line: "prompts: pick a prompt file or paste prompts, one per line",
      },
      {
        name: "an empty prompt file",
        ...good,
        promptsFile: emptyPrompts,
        line: 'no prompts in empty.txt: expected one prompt per line (.txt), JSON Lines with a "prompt"/"text" ' +
          'field or a "conversation", a CSV with a prompt column, or lmsys-style Parquet',
      },
      {
        name: "a binary prompt file",
        ...good,
        promptsFile: binaryPrompts,
        line: "weights.txt is not a text file (a NUL byte at offset 8): pass prompts as .txt, .jsonl, .json, .csv " +
          "or .parquet",
      },
    ];

    // A checkpoint of another run, which no failed run may touch.
    await page.evaluate(async () => {
      const root = await navigator.storage.getDirectory();
      const dir = await (await root.getDirectoryHandle("model-diff", { create: true }))
        .getDirectoryHandle("checkpoints", { create: true });
      const writable = await (await dir.getFileHandle("another-run-chat", { create: true })).createWritable();
      await writable.write(new Uint8Array([1, 2, 3]));
      await writable.close();
    });
    let before = await opfsFiles(page);
    assertEquals(before, ["model-diff/checkpoints/another-run-chat: 3"]);

    const problems: string[] = [];
    for (const c of cases) {
      await setInputs(page, c);
      await page.evaluate(() => document.body.dataset.state = "pressed");
      await page.locator("#run").click();
      const state = await waitForState(page, ["error", "done", "idle"], 120_000);
      const line = await page.locator("#error").innerText();
      if (state !== "error" || line !== c.line) problems.push(`${c.name}: ${state}: ${JSON.stringify(line)}`);
      assert(await page.locator("#run").isEnabled(), `${c.name}: Run is enabled again`);
      const after = await opfsFiles(page);
      const added = after.filter((f) => !before.includes(f));
      assertEquals(before.filter((f) => !after.includes(f)), [], `${c.name}: files lost`);
      if (c.builds) {
        // Whole builds only: each graph beside its record, nothing else.
        const keys = added.map((f) => f.match(/^model-diff\/graphs\/([0-9a-f]+)%2E(graph|meta): \d+$/));
        assert(keys.every((k) => k), `${c.name}: added ${added}`);
        const graphs = keys.filter((k) => k![2] === "graph").map((k) => k![1]).sort();
        assertEquals(keys.filter((k) => k![2] === "meta").map((k) => k![1]).sort(), graphs, `${c.name}: builds`);
      } else {
        assertEquals(added, [], `${c.name}: files added`);
      }
      before = after;
    }
    assertEquals(problems, []);
    assertEquals(session.errors, []);
  } finally {
    await session.close();
  }
});

/** Picks and types a case's inputs, clearing what the case leaves out. */
async function setInputs(page: Page, c: Case): Promise<void> {
  for (const [id, dir] of [["base", c.base], ["chat", c.chat], ["sae", c.sae]] as const) {
    if (dir) await pickFolder(page, `#${id}-folder`, dir);
    else await page.locator(`#${id}-folder`).setInputFiles([]);
  }
  await page.locator("#prompts-file").setInputFiles(c.promptsFile ? [c.promptsFile] : []);
  await page.locator("#prompts-text").fill(c.promptsText ?? "");
}
