/**
 * A model's short name for file names, platform-neutral (the CLI's results folders and the page's
 * downloads name files alike).
 *
 * @module
 */

/** A short name for file names: the last path or id component, lower-cased (`gemma-2-9b-it`). */
export function modelShortName(source: string): string {
  const last = source.replace(/[\\/]+$/, "").split(/[\\/]/).at(-1) ?? source;
  return last.toLowerCase().replace(/[^a-z0-9._-]+/g, "-");
}
