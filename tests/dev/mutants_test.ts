import { assert, assertEquals } from "../assert.ts";
import { applyMutant, classifyRun, type Mutant, parseMutants } from "../../lib/dev/mutants.ts";

const LIST = new URL("../mutants.json", import.meta.url);

Deno.test("mutants: every listed mutant applies exactly once to the current code and names existing test files", async () => {
  const mutants = parseMutants(await Deno.readTextFile(LIST), "tests/mutants.json");
  assert(mutants.length >= 10, `${mutants.length} mutants`);
  for (const mutant of mutants) {
    const text = await Deno.readTextFile(new URL(`../../${mutant.file}`, import.meta.url));
    const applied = applyMutant(text, mutant);
    assert("text" in applied && applied.text !== text, `${mutant.id}: ${"error" in applied ? applied.error : ""}`);
    for (const test of mutant.tests) {
      assert((await Deno.stat(new URL(`../../${test}`, import.meta.url))).isFile, `${mutant.id}: ${test}`);
    }
  }
});

Deno.test("mutants: a missing or repeated search text is an error; replacement text is taken literally", () => {
  const mutant: Mutant = { id: "m", file: "f.ts", search: "a > b", replace: "a >= b $&", tests: ["t.ts"] };
  assertEquals(applyMutant("if (a > b) x;", mutant), { text: "if (a >= b $&) x;" });
  assertEquals(applyMutant("if (a < b) x;", mutant), { error: "search text not found in f.ts (stale list?)" });
  assertEquals(applyMutant("a > b; a > b", mutant), { error: "search text occurs 2 times in f.ts: make it unique" });
});

Deno.test("mutants: a run is a test failure, a crash, a timeout, a pass or empty, from deno test's output", () => {
  const failed =
    " FAILURES \n\nread positions: x => ./tests/chat_test.ts:13:6\n\nFAILED | 1 passed | 1 failed (20ms)\n";
  assertEquals(classifyRun(1, failed, false), { kind: "test failure", failed: ["read positions: x"] });
  assertEquals(classifyRun(0, "ok | 3 passed | 0 failed (1s)\n", false), { kind: "passed" });
  assertEquals(classifyRun(0, "ok | 0 passed | 0 failed | 4 filtered out (1s)\n", false), { kind: "no tests ran" });
  assertEquals(classifyRun(137, "running 2 tests\n", true), { kind: "timeout" });
  assertEquals(classifyRun(137, "running 2 tests\nfatal: out of memory\n", false).kind, "crash");
});
