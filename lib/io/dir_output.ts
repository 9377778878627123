/**
 * A directory on disk as a {@linkcode ReportOutput}: files written atomically, plotly.js read from npm.
 *
 * @module
 */

import { join } from "node:path";
import type { ReportOutput } from "../core/output.ts";
import { writeFileAtomic } from "./atomic.ts";

let plotlySource: Promise<string> | undefined;

/**
 * plotly.js (the basic bundle: scatter, bar, pie) from npm. It is not a module we import, so a fresh
 * checkout may not have it in node_modules yet: `deno install` fetches it then.
 */
export function plotlyJsFromNpm(): Promise<string> {
  plotlySource ??= (async () => {
    const url = new URL(import.meta.resolve("plotly.js-basic-dist-min"));
    const path = new URL("plotly-basic.min.js", url);
    const read = () => Deno.readTextFile(path);
    try {
      return await read();
    } catch {
      await new Deno.Command(Deno.execPath(), { args: ["install", "--quiet"], stdout: "null", stderr: "null" })
        .output();
      return await read();
    }
  })();
  return plotlySource;
}

/** The directory `dir` as a report output. */
export function dirOutput(dir: string): ReportOutput {
  return {
    label: (name) => join(dir, name),
    write: (name, data) => writeFileAtomic(join(dir, name), data),
    plotlyJs: plotlyJsFromNpm,
  };
}
