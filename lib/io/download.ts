/**
 * Downloads from the Hugging Face hub: files streamed to disk (never held in memory) through a
 * `.part` file, resumed with HTTP Range requests, into a local cache.
 *
 * @module
 */

import { dirname, join } from "node:path";
import { UserError } from "../core/errors.ts";
import { ProgressBar } from "./progress.ts";
import { writeJsonAtomic } from "./atomic.ts";

/** True when `source` looks like a hub repository id (`org/name`) rather than a path. */
export function isHubId(source: string): boolean {
  return /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/.test(source);
}

/** Where hub downloads are kept (override with MODEL_DIFF_HUB_CACHE). */
export function hubCacheDir(): string {
  const home = Deno.env.get("HOME") ?? ".";
  return Deno.env.get("MODEL_DIFF_HUB_CACHE") ?? join(home, ".cache", "model-diff", "hub");
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

/** Attempts per file: a dropped connection resumes from what arrived, this many times in one run. */
const DOWNLOAD_ATTEMPTS = 5;

/** What a partial download was fetched from, kept beside its `.part` file so a resume never mixes two files. */
interface PartInfo {
  url: string;
  /** A strong ETag the server gave (sent as If-Range: a changed file then comes back whole). */
  etag: string | null;
  /** The full size, when the server said. */
  size: number | null;
}

/**
 * Downloads `file` of hub repository `id` into `dir` unless present (404 is fine when not `required`).
 * Streams to `<file>.part` and renames when complete; a dropped connection resumes with an HTTP Range
 * request, within this run and in the next one (a server that ignores Range, or a file that changed,
 * restarts it cleanly). `HF_TOKEN` is sent as a Bearer token for gated repositories.
 */
export async function downloadFile(id: string, revision: string, file: string, dir: string, required: boolean) {
  const target = join(dir, file);
  if (await exists(target)) return;
  const endpoint = Deno.env.get("HF_ENDPOINT") ?? "https://huggingface.co";
  const url = `${endpoint}/${id}/resolve/${encodeURIComponent(revision)}/${file}`;
  const token = Deno.env.get("HF_TOKEN");
  const part = `${target}.part`;
  const infoPath = `${part}.json`;
  await Deno.mkdir(dirname(target), { recursive: true });
  for (let attempt = 1;; attempt++) {
    const info = await Deno.readTextFile(infoPath).then((s) => JSON.parse(s) as PartInfo, () => null);
    const partSize = await Deno.stat(part).then((s) => s.size, () => 0);
    const have = info?.url === url && (info.size === null || partSize <= info.size) ? partSize : 0;
    const headers: Record<string, string> = token ? { Authorization: `Bearer ${token}` } : {};
    if (have > 0) {
      headers.Range = `bytes=${have}-`;
      if (info?.etag) headers["If-Range"] = info.etag;
    }
    let response: Response;
    try {
      response = await fetch(url, { headers });
    } catch (error) {
      throw new UserError(
        `could not reach the Hugging Face hub for ${id} (${
          (error as Error).message.split("\n")[0]
        }): check the network (or HF_ENDPOINT), or pass a local model directory`,
      );
    }
    if (response.status === 416) {
      // What we have is not a prefix the server recognises: start over.
      await response.body?.cancel();
      await Deno.remove(part).catch(() => {});
      continue;
    }
    if (!response.ok) {
      await response.body?.cancel();
      if (!required && response.status === 404) return;
      if (response.status === 401 || response.status === 403) {
        throw new UserError(
          `${id} refused ${file} (HTTP ${response.status}): it is gated or private; ${
            token
              ? "HF_TOKEN was sent, so accept the model's licence on its hub page with that account"
              : "set HF_TOKEN"
          } (a token from https://huggingface.co/settings/tokens, after accepting the licence on the model's page)`,
        );
      }
      throw new UserError(
        `could not download ${file} of ${id} (HTTP ${response.status}): check the id and revision, or pass a local model directory`,
      );
    }
    const range = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(response.headers.get("content-range") ?? "");
    // 200 (Range ignored, or If-Range saw a changed file) means the whole file from byte 0.
    const start = response.status === 206 && range && Number(range[1]) === have ? have : 0;
    if (response.status === 206 && start !== have) {
      await response.body?.cancel();
      await Deno.remove(part).catch(() => {});
      continue;
    }
    const length = Number(response.headers.get("content-length") ?? NaN);
    const size = range && range[2] !== "*" ? Number(range[2]) : Number.isFinite(length) ? start + length : null;
    const etag = response.headers.get("etag");
    await writeJsonAtomic(infoPath, { url, etag: etag && !etag.startsWith("W/") ? etag : null, size });
    const received = await streamInto(response.body!, part, start, file, size);
    if (received.error) {
      if (attempt < DOWNLOAD_ATTEMPTS) {
        console.error(`connection lost during ${file} at ${(received.bytes / 1e6).toFixed(1)} MB; resuming`);
        continue;
      }
      throw new UserError(
        `the download of ${file} of ${id} kept failing (${received.error}): run again to resume from ${
          (received.bytes / 1e6).toFixed(1)
        } MB`,
      );
    }
    if (size !== null && received.bytes !== size) {
      await Deno.remove(part).catch(() => {});
      throw new UserError(`${file} of ${id} arrived with ${received.bytes} of ${size} bytes: run again`);
    }
    await Deno.rename(part, target);
    await Deno.remove(infoPath).catch(() => {});
    return;
  }
}

/**
 * Writes `body` into `path` from byte `start` (truncating what follows), with a progress bar in MB for
 * large files; returns the file's size afterwards and the error that ended the stream early, if any.
 */
async function streamInto(
  body: ReadableStream<Uint8Array>,
  path: string,
  start: number,
  label: string,
  size: number | null,
): Promise<{ bytes: number; error?: string }> {
  const out = await Deno.open(path, { write: true, create: true });
  await out.truncate(start);
  await out.seek(start, Deno.SeekMode.Start);
  // Weights are gigabytes: show MB/s and an ETA for anything large.
  const bar = size !== null && size > 16e6
    ? new ProgressBar(`downloading ${label}`, Math.ceil(size / 1e6), "MB", Math.floor(start / 1e6))
    : undefined;
  let bytes = start;
  try {
    for await (const chunk of body) {
      for (let written = 0; written < chunk.length;) written += await out.write(chunk.subarray(written));
      bytes += chunk.length;
      bar?.update(Math.floor(bytes / 1e6));
    }
  } catch (error) {
    return { bytes, error: (error as Error).message.split("\n")[0] };
  } finally {
    out.close();
  }
  bar?.finish();
  return { bytes };
}
