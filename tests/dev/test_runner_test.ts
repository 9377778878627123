import { assertEquals } from "../assert.ts";
import { dealFiles, formatElapsed, junitDurations, parseSummary, testFiles } from "../../lib/dev/test_runner.ts";

Deno.test("test runner: files are dealt longest first to the lightest group; each file once; unknown files count 10 s", () => {
  const seconds = { a: 10, b: 9, c: 8, d: 1 };
  // 10 -> 1st; 9 -> 2nd; 8 -> 2nd (9 < 10); 1 -> 1st (10 < 17).
  assertEquals(dealFiles(["a", "b", "c", "d"], seconds, 2), [["a", "d"], ["b", "c"]]);
  assertEquals(dealFiles(["a", "new"], { a: 25 }, 3), [["a"], ["new"]], "no more groups than files");
  // 30 -> 1st, unknown (10) and 5 -> 2nd.
  assertEquals(dealFiles(["x", "new", "y"], { x: 30, y: 5 }, 2), [["x"], ["new", "y"]]);
  // Files recorded at 0 s all tie on the first group: no group is left without a file (deno test given
  // none would run every test file it finds, the runner's own script included).
  assertEquals(dealFiles(["z1", "z2", "z3"], { z1: 0, z2: 0, z3: 0 }, 2), [["z1", "z2", "z3"]]);
  const many = Array.from({ length: 9 }, (_, i) => `f${i}`);
  assertEquals(dealFiles(many, {}, 4).flat().sort(), many);
});

Deno.test("test runner: the summary counts come from deno test's closing line, coloured or not", () => {
  const coloured =
    "running 2 tests\n\x1b[0m\x1b[32mok\x1b[0m | 12 passed | 0 failed \x1b[0m\x1b[38;5;245m(3s)\x1b[0m\n";
  assertEquals(parseSummary(coloured), { passed: 12, failed: 0 });
  assertEquals(parseSummary("x\nFAILED | 7 passed | 2 failed | 1 filtered out (1m2s)\n"), { passed: 7, failed: 2 });
  assertEquals(parseSummary("error: Type checking failed.\n"), undefined);
});

Deno.test("test runner: durations per file from a junit report; elapsed times written as deno test writes them", () => {
  const xml = `<?xml version="1.0"?><testsuites name="deno test" tests="3" time="4.5">
<testsuite name="./tests/a_test.ts" tests="2"><testcase name="one" classname="./tests/a_test.ts" time="1.25"></testcase>
<testcase name="two" classname="./tests/a_test.ts" time="2.5"><failure message="x"/></testcase></testsuite>
<testsuite name="./tests/b/c_test.ts" tests="1"><testcase name="three" classname="./tests/b/c_test.ts" time="0.75"></testcase></testsuite>
</testsuites>`;
  assertEquals(junitDurations(xml), { "tests/a_test.ts": 3.8, "tests/b/c_test.ts": 0.8 });
  assertEquals([formatElapsed(950), formatElapsed(12_400), formatElapsed(184_000)], ["950ms", "12s", "3m4s"]);
});

Deno.test("test runner: every *_test.ts under tests/ is found, this one included, and nothing else", async () => {
  const files = await testFiles(new URL("..", import.meta.url).pathname);
  assertEquals(files.includes("tests/dev/test_runner_test.ts"), true);
  assertEquals(files.every((f) => f.startsWith("tests/") && f.endsWith("_test.ts")), true);
  assertEquals(files.includes("tests/helpers.ts"), false);
});
