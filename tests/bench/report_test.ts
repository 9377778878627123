import { assert, assertEquals, assertMatch } from "../assert.ts";
import { meaningfulLines, runScript } from "../helpers.ts";
import { tempFile } from "../temp.ts";

/** The peers every report measures, by section (auto's rows name the device it chose, checked apart). */
const PEERS: Record<string, string[]> = {
  "WebGPU encode": [
    "ORT-web WebGPU MatMul",
    "ours: encode",
    "ours: encode + statistics",
    "ORT-node CPU MatMul",
    "TS loop (first 4096 features, scaled)",
    "ours: top-k (k = 64)",
  ],
  cosine: ["CPU (the sweep's host path)", "ours"],
  crosscoder: ["ours: SAE encode of the paired rows", "ours: crosscoder encode (pairing included)"],
  "CPU encode": ["ORT-node MatMul", "ours: encode (JumpReLU, ~1% active)", "ours: encode + statistics"],
  "end to end": ["webgpu", "cpu", "webgpu, residuals via the host"],
};

Deno.test("bench --report --quick writes one markdown table: adapter facts, every section's rows with finite figures and ratios", async () => {
  const file = await tempFile("bench.md");
  const run = await runScript("bench.ts", ["--report", file, "--quick", "--reps", "1"]);
  assertEquals(run.code, 0, meaningfulLines(run.stderr).join("\n"));
  const text = await Deno.readTextFile(file);
  assert(!/NaN|Infinity/.test(text), text);
  const lines = text.split("\n");
  const fact = (name: string) => lines.find((l) => l.startsWith(`- ${name}: `));
  assertMatch(fact("adapter") ?? "", /^- adapter: WebGPU: .+; shader-f16 (yes|no)/);
  assertMatch(fact("isFallbackAdapter") ?? "", /^- isFallbackAdapter: (true|false|not reported)$/);
  assertMatch(fact("date") ?? "", /^- date: \d{4}-\d\d-\d\dT/);
  assertMatch(fact("Deno") ?? "", new RegExp(`^- Deno: ${Deno.version.deno.replaceAll(".", "\\.")} `));
  const cells = (line: string) => line.slice(1, -1).split(" | ").map((c) => c.trim());
  const table = lines.filter((l) => l.startsWith("| "));
  assertEquals(cells(table[0]), ["section", "measure", "peer", "figure", "baseline", "speed-up (>1: faster)", "note"]);
  assertMatch(table[1], /^\| -+ (\| -+ )+\|$/);
  const rows = table.slice(2).map(cells);
  for (const [section, measure, peer, figure, baseline, ratio] of rows) {
    const value = Number(/^(\S+) \S+$/.exec(figure)?.[1]);
    assert(Number.isFinite(value) && value > 0, `${section} ${measure} ${peer}: figure ${figure}`);
    assertMatch(ratio, /^(x\d+\.\d\d|-)$/, `${measure} ${peer}`);
    if (peer === baseline) assertEquals(ratio, "x1.00", `${measure}: the baseline row`);
  }
  const f16 = / shader-f16 yes/.test(fact("adapter")!);
  if (!f16) assert(text.includes("f16 weights: the adapter lacks shader-f16"), "one line says why f16 is skipped");
  for (const [section, peers] of Object.entries(PEERS)) {
    const found = new Set(rows.filter((r) => r[0] === section).map((r) => r[2]));
    assertEquals(peers.filter((p) => !found.has(p)), [], `${section}: every peer has a row`);
  }
  assert(rows.some((r) => r[2].startsWith("auto (-> ")), "auto's rows");
  for (const weights of ["f32", ...(f16 ? ["f16"] : [])]) {
    const peers = rows.filter((r) => r[0] === "WebGPU encode" && r[1].endsWith(` ${weights}`)).map((r) => r[2]);
    assert(peers.includes("ours: encode") && peers.includes("ORT-web WebGPU MatMul"), `${weights}: ours and ORT-web`);
  }
  for (const measure of ["diff, ", "kl, ", "generation, ", "warm model load "]) {
    const devices = rows.filter((r) => r[1].startsWith(measure)).map((r) => r[2]);
    assert(devices.includes("webgpu") && devices.includes("cpu"), `${measure}: webgpu and cpu in the same run`);
  }
});
