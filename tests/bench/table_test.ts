import { assert, assertEquals } from "../assert.ts";
import {
  type BenchSection,
  formatSection,
  interleavedMedians,
  markdownTable,
  settledMedians,
  speedup,
} from "../../lib/bench/table.ts";

const section: BenchSection = {
  title: "diff",
  versus: "webgpu",
  rows: [
    { measure: "prompts", peer: "webgpu", value: 10, unit: "prompts/s" },
    { measure: "prompts", peer: "cpu", value: 25, unit: "prompts/s", note: "a | b" },
    { measure: "load", peer: "webgpu", value: 2, unit: "s/GB" },
    { measure: "load", peer: "cpu", value: 0.5, unit: "s/GB" },
    { measure: "start", peer: "-", value: 0.2, unit: "s" },
  ],
  skipped: ["f16: no shader-f16"],
  rules: "same inputs",
};

Deno.test("bench table: above 1 is faster than the baseline for rates and costs alike; other units have no ratio", () => {
  const [web, cpu, loadWeb, loadCpu, start] = section.rows;
  assertEquals([speedup(cpu, web), speedup(loadCpu, loadWeb), speedup(start, web)], [2.5, 4, undefined]);
  const text = formatSection(section).split("\n");
  assertEquals(text[0].split(" | ").map((c) => c.trim()), [
    "diff",
    "peer",
    "figure",
    "speed-up (>1: faster) vs webgpu",
    "note",
  ]);
  assert(text[3].includes("| x2.50 "), text[3]);
  assert(text[5].includes("| x4.00"), text[5]);
  assert(text[6].includes("| -"), "no baseline in its measure: no ratio");
  assertEquals(text.slice(-2), ["same inputs", "n/a: f16: no shader-f16"]);
});

Deno.test("bench table: markdown has the facts, one aligned table naming each row's baseline, escaped pipes, skips", () => {
  const md = markdownTable("report", ["adapter: x"], [section]).split("\n");
  assertEquals(md.slice(0, 4), ["# report", "", "- adapter: x", ""]);
  const table = md.filter((l) => l.startsWith("| "));
  assertEquals(table.length, 2 + section.rows.length);
  assertEquals(new Set(table.map((l) => l.length)).size, 1, "columns aligned");
  assert(table[3].includes("a \\| b") && table[3].includes("| webgpu "), table[3]);
  assert(md.includes("- diff: f16: no shader-f16") && md.includes("- diff: same inputs"));
});

Deno.test("bench table: a peer that fails its warm-up is reported by its first line, the others still timed", async () => {
  let calls = 0;
  const { seconds, failed } = await settledMedians(2, {
    ok: () => Promise.resolve(calls++),
    broken: () => Promise.reject(new Error("no f16 MatMul\nstack")),
  });
  assertEquals(Object.keys(seconds), ["ok"]);
  assertEquals(failed, { broken: "no f16 MatMul" });
  assertEquals(calls, 3, "one warm-up and two timed runs");
  const order: string[] = [];
  await interleavedMedians(2, [() => Promise.resolve(order.push("a")), () => Promise.resolve(order.push("b"))]);
  assertEquals(order, ["a", "b", "a", "b", "a", "b"], "warm-up round, then the peers in turn each round");
});
