import { assert, assertEquals, assertMatch } from "../assert.ts";
import { COMMANDS } from "../../lib/cli/commands.ts";
import { meaningfulLines, runScript } from "../helpers.ts";

for (const [script, command] of Object.entries(COMMANDS)) {
  Deno.test(`${command.task} --help lists every flag of its table and exits 0; a wrong flag is one line`, async () => {
    for (const flag of ["--help", "-h"]) {
      const help = await runScript(script, [flag]);
      assertEquals(help.code, 0, help.stderr);
      const listed = [...help.stdout.matchAll(/^ {2}--([a-z-]+)/gm)].map((m) => m[1]);
      assertEquals(listed, Object.keys(command.flags), `${script} ${flag}`);
      assertMatch(help.stdout, /^usage: deno task /);
      for (const example of command.examples) assert(help.stdout.includes(example), example);
    }
    const wrong = await runScript(script, ["--no-such-flag"]);
    assert(wrong.code !== 0, "a wrong flag exits non-zero");
    const lines = meaningfulLines(wrong.stderr);
    assertEquals(lines.length, 1, wrong.stderr);
    assertMatch(lines[0], /^error: .*no-such-flag.*see deno task .* --help/);
  });
}
