/**
 * A {@linkcode FileSource} over a Hugging Face hub repo, read over HTTP from the page: `size` is a HEAD,
 * `read` a Range request, so a safetensors header or one tensor never downloads the whole file. A gated
 * or private repo (401/403) asks for HF_TOKEN in one line. Platform-neutral: only `fetch`.
 *
 * @module
 */

import { UserError } from "../../lib/core/errors.ts";
import type { FileSource } from "../../lib/core/file_source.ts";

/** Options of {@linkcode hubSource}. */
export interface HubSourceOptions {
  /** Sent as `Authorization: Bearer`. */
  token?: string;
  /** Branch, tag or commit (default main). */
  revision?: string;
  /** Hub address (default https://huggingface.co). */
  endpoint?: string;
  /** The fetch to use (tests). */
  fetch?: typeof fetch;
}

/** A FileSource over hub repo `id` (`owner/name`). */
export function hubSource(id: string, options: HubSourceOptions = {}): FileSource {
  const endpoint = (options.endpoint ?? "https://huggingface.co").replace(/\/$/, "");
  const revision = options.revision ?? "main";
  const get = options.fetch ?? fetch;
  const url = (path: string) =>
    `${endpoint}/${id}/resolve/${encodeURIComponent(revision)}/${path.split("/").map(encodeURIComponent).join("/")}`;
  const label = (path: string) => `${id}/${path}`;
  const headers = (extra: Record<string, string> = {}) =>
    options.token ? { ...extra, authorization: `Bearer ${options.token}` } : extra;

  /** The response, or a UserError for a refusal, a missing file (unless `missingOk`) or no network. */
  const request = async (path: string, init: RequestInit, missingOk = false): Promise<Response | undefined> => {
    let response: Response;
    try {
      response = await get(url(path), init);
    } catch (error) {
      throw new UserError(
        `could not reach ${endpoint} for ${label(path)} (${(error as Error).message}): check the network`,
      );
    }
    if (response.status === 401 || response.status === 403) {
      await response.body?.cancel();
      throw new UserError(
        options.token
          ? `${id} refused the HF_TOKEN given (HTTP ${response.status}): accept the model's licence on huggingface.co with that account, or check the token`
          : `${id} is gated or private (HTTP ${response.status}): enter an HF_TOKEN with access to it`,
      );
    }
    if (response.status === 404) {
      await response.body?.cancel();
      if (missingOk) return undefined;
      throw new UserError(`not found on the hub: ${label(path)} (check the repo id and file name)`);
    }
    if (!response.ok) {
      await response.body?.cancel();
      throw new UserError(`the hub answered HTTP ${response.status} for ${label(path)}: try again later`);
    }
    return response;
  };

  return {
    label,
    async size(path) {
      const response = await request(path, { method: "HEAD", headers: headers() }, true);
      if (!response) return undefined;
      const length = response.headers.get("content-length");
      if (length !== null) return Number(length);
      // No length on the HEAD (some proxies): ask for one byte and read the total from Content-Range.
      const ranged = await request(path, { headers: headers({ range: "bytes=0-0" }) });
      await ranged!.body?.cancel();
      const total = /\/(\d+)$/.exec(ranged!.headers.get("content-range") ?? "")?.[1];
      return total === undefined ? undefined : Number(total);
    },
    async read(path, offset, length) {
      if (length === 0) return new Uint8Array(0);
      const response =
        (await request(path, { headers: headers({ range: `bytes=${offset}-${offset + length - 1}` }) }))!;
      let bytes = new Uint8Array(await response.arrayBuffer());
      // A server that ignores Range sends the whole file.
      if (response.status === 200) bytes = bytes.subarray(offset, offset + length);
      if (bytes.length < length) {
        throw new UserError(`${label(path)} ends before byte ${offset + length}: the file is truncated`);
      }
      return bytes;
    },
    async readAll(path, what) {
      const response = await request(path, { headers: headers() }, true);
      if (!response) throw new UserError(`${what} not found on the hub: ${label(path)}`);
      return new Uint8Array(await response.arrayBuffer());
    },
  };
}
