/**
 * Regenerates `lib/sae/releases.json` from SAELens's `pretrained_saes.yaml` (see lib/dev/sae_releases.ts):
 *
 * ```sh
 * git -C SAELens show <commit>:sae_lens/pretrained_saes.yaml > /tmp/pretrained_saes.yaml
 * deno run -A scripts/tools/sae_releases.ts /tmp/pretrained_saes.yaml \
 *   --repo decoderesearch/SAELens --commit <full hash> --date <commit date, ISO>
 * ```
 */

import { parseArgs } from "node:util";
import { buildTable, formatTable } from "../../lib/dev/sae_releases.ts";
import { writeFileAtomic } from "../../lib/io/atomic.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    repo: { type: "string", default: "decoderesearch/SAELens" },
    commit: { type: "string" },
    date: { type: "string" },
    out: { type: "string", default: new URL("../../lib/sae/releases.json", import.meta.url).pathname },
  },
});
if (positionals.length !== 1 || !values.commit || !values.date) {
  console.error("usage: sae_releases.ts PRETRAINED_SAES.yaml --commit HASH --date ISO-DATE [--repo R] [--out F]");
  Deno.exit(1);
}
const table = buildTable(await Deno.readTextFile(positionals[0]), {
  repo: values.repo!,
  commit: values.commit,
  date: values.date,
});
await writeFileAtomic(values.out!, formatTable(table));
const count = Object.values(table.releases).reduce((n, r) => n + r.saes.length, 0);
console.log(`${Object.keys(table.releases).length} releases, ${count} SAEs -> ${values.out}`);
