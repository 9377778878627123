/**
 * `deno task web`: builds the web page (lib/run/web_site.ts) into `--out` and serves it on 127.0.0.1
 * (`--port`), printing its URL; `--build-only` builds and exits.
 */

import { parseFlags } from "../lib/cli/flags.ts";
import { WEB } from "../lib/cli/commands.ts";
import { runMain } from "../lib/cli/main.ts";
import { UserError } from "../lib/core/errors.ts";
import { serveStatic } from "../lib/io/static_server.ts";
import { buildSite } from "../lib/run/web_site.ts";

await runMain(async () => {
  const { values } = parseFlags(Deno.args, WEB);
  const port = Number(values.port);
  if (!/^\d+$/.test(values.port!) || port < 1 || port > 65535) {
    throw new UserError(`--port must be a port number from 1 to 65535, not "${values.port}"`);
  }
  await buildSite(values.out!, { log: console.log });
  if (values["build-only"]) return;
  const server = serveStatic(values.out!, port);
  console.log(`serving ${values.out} at ${server.url} (Ctrl-C stops)`);
});
