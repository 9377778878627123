/** Absolute file URL of a path (relative paths from the working directory). */
export function toFileUrl(path: string): string {
  const absolute = path.startsWith("/") ? path : `${Deno.cwd()}/${path}`;
  return new URL(`file://${absolute}`).href;
}
