/**
 * The disk as a user meets it: sizes written for people, and the two ways a machine refuses a write
 * (no space left, a read-only or foreign folder) turned into one line that names the folder and what
 * the step needed, instead of an `internal error` carrying the system's message.
 *
 * @module
 */

import { UserError } from "../core/errors.ts";

/** A size for people: `1.23 GB`. */
export function formatSize(bytes: number): string {
  if (!Number.isFinite(bytes)) return "unlimited";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return unit ? `${value.toFixed(2)} ${units[unit]}` : `${bytes} B`;
}

/** The system error code (`ENOSPC`, `EROFS`, ...) of a thrown value, if it has one. */
export function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/** Whether `error` says the disk (or the user's quota) is full. */
export function isDiskFull(error: unknown): boolean {
  const code = errorCode(error);
  return code === "ENOSPC" || code === "EDQUOT";
}

/** Whether `error` says the folder cannot be written at all (a read-only filesystem, no permission). */
export function isNotWritable(error: unknown): boolean {
  const code = errorCode(error);
  return code === "EROFS" || code === "EACCES" || code === "EPERM" || error instanceof Deno.errors.PermissionDenied;
}

/**
 * The one line for a disk that filled while a step wrote into `dir`: `no space left on device in
 * <dir>: <what> needed <size>: <fix>`.
 */
export function diskFullError(dir: string, what: string, neededBytes: number, fix: string): UserError {
  return new UserError(`no space left on device in ${dir}: ${what} needed ${formatSize(neededBytes)}; ${fix}`);
}
