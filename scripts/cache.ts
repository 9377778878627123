/**
 * `deno task cache`: lists the cache entries (converted checkpoints, rewritten graphs, shared
 * weights, and unfinished builds that killed processes left) with kind, source, size and last use,
 * and the total against the cap; `clear` removes all of them, some by id, or those unused for
 * `--older-than`.
 */

import { parseFlags } from "../lib/cli/flags.ts";
import { CACHE } from "../lib/cli/commands.ts";
import { runMain } from "../lib/cli/main.ts";
import { UserError } from "../lib/core/errors.ts";
import {
  CACHE_MAX_ENV,
  cacheCap,
  cacheRoot,
  clearCache,
  formatSize,
  listCache,
  parseAge,
} from "../lib/io/cache_store.ts";

/** How long ago, for people: `5 min ago`, `3 h ago`, `12 d ago`. */
function ago(date: Date): string {
  const s = (Date.now() - date.getTime()) / 1000;
  if (s < 90) return `${Math.max(0, Math.round(s))} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 129600) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => c === r.length - 1 ? cell : cell.padEnd(widths[c])).join("  ")).join(
    "\n",
  );
}

await runMain(async () => {
  const { values, positionals } = parseFlags(Deno.args, CACHE);
  const [action = "list", ...ids] = positionals;
  const cap = cacheCap(); // a malformed cap is reported before anything else
  if (action === "list") {
    if (ids.length || values["older-than"] !== undefined) {
      throw new UserError("ids and --older-than go with clear: deno task cache clear [ID...] [--older-than 7d]");
    }
    const { entries, totalBytes } = await listCache();
    if (entries.length) {
      console.log(table([
        ["id", "kind", "size", "shared", "last use", "source"],
        ...entries.map((e) => [
          e.id,
          e.kind,
          formatSize(e.bytes),
          e.sharedBytes ? formatSize(e.sharedBytes) : "-",
          ago(e.lastUse),
          e.source,
        ]),
      ]));
    } else console.log("the cache is empty");
    const unfinished = entries.filter((e) => e.unfinished).length;
    if (unfinished) {
      console.log(
        `${unfinished} unfinished builds of processes that are gone (killed mid-build): ` +
          "deno task cache clear removes them, and so does the next build of the same model",
      );
    }
    console.log(
      `total ${formatSize(totalBytes)} in ${entries.length} entries (${CACHE_MAX_ENV} ${formatSize(cap)}); ` +
        `under ${cacheRoot("checkpoint")} and ${cacheRoot("rewritten")}`,
    );
    return;
  }
  if (action !== "clear") {
    throw new UserError(`unknown action "${action}": use deno task cache [list] or deno task cache clear [ID...]`);
  }
  const olderThan = values["older-than"];
  const { removed, freedBytes } = await clearCache({
    ids,
    olderThanMs: olderThan === undefined ? undefined : parseAge(olderThan, "--older-than"),
  });
  console.log(`removed ${removed.length} entries, freed ${formatSize(freedBytes)}`);
});
