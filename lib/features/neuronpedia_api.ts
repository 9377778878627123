/**
 * Asking Neuronpedia for feature explanations, with answers cached on disk (the platform side of
 * ./neuronpedia.ts, which holds the ids, links and the answer's shape).
 *
 * @module
 */

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describeError, UserError } from "../core/errors.ts";
import { writeJsonAtomic } from "../io/atomic.ts";
import { type Explanation, NEURONPEDIA, parseExplanations } from "./neuronpedia.ts";

/** Neuronpedia could not be asked (no network, a timeout, an error answer): the message says why. */
export class NeuronpediaUnavailable extends Error {}

/** Options of {@linkcode fetchExplanation}. */
export interface ExplanationOptions {
  /** Server to ask (default `MODEL_DIFF_NEURONPEDIA_URL`, else {@linkcode NEURONPEDIA}). */
  baseUrl?: string;
  /** Where answers are cached (default `MODEL_DIFF_NEURONPEDIA_CACHE`, else `.cache/neuronpedia`). */
  cacheDir?: string;
  /** Give up on a request after this many milliseconds (default 5000). */
  timeoutMs?: number;
  /** Only the cache: never ask the server. */
  cacheOnly?: boolean;
}

/** One cached answer: the URL asked (its key) and the explanations it held. */
interface CachedAnswer {
  url: string;
  fetched: string;
  explanations: Explanation[];
}

function resolved(options: ExplanationOptions) {
  const baseUrl = (options.baseUrl ?? Deno.env.get("MODEL_DIFF_NEURONPEDIA_URL") ?? NEURONPEDIA).replace(/\/+$/, "");
  if (!URL.canParse(baseUrl) || !/^https?:$/.test(new URL(baseUrl).protocol)) {
    throw new UserError(
      `the Neuronpedia server "${baseUrl}" is not an http(s) URL: set MODEL_DIFF_NEURONPEDIA_URL like https://www.neuronpedia.org`,
    );
  }
  return {
    baseUrl,
    cacheDir: options.cacheDir ?? Deno.env.get("MODEL_DIFF_NEURONPEDIA_CACHE") ??
      fileURLToPath(new URL("../../.cache/neuronpedia", import.meta.url)),
    timeoutMs: options.timeoutMs ?? 5000,
  };
}

/**
 * The explanations of feature `index` of Neuronpedia's `model`/`source` (`GET
 * {base}/api/feature/{model}/{source}/{index}`), from the cache when it was asked before, else asked
 * and cached: one JSON file per feature under the cache directory, keyed by the server, model,
 * source and index (the URL asked, checked on reading). A feature the server does not have (404) is
 * cached as one without explanations. Returns `undefined` with `cacheOnly` when nothing is cached;
 * throws {@linkcode NeuronpediaUnavailable} when the server cannot be asked.
 */
export async function fetchExplanation(
  model: string,
  source: string,
  index: number,
  options: ExplanationOptions = {},
): Promise<Explanation[] | undefined> {
  const { baseUrl, cacheDir, timeoutMs } = resolved(options);
  const url = `${baseUrl}/api/feature/${[model, source, String(index)].map(encodeURIComponent).join("/")}`;
  const path = join(
    cacheDir,
    encodeURIComponent(new URL(baseUrl).host),
    ...[model, source].map(encodeURIComponent),
    `${index}.json`,
  );
  // A damaged cache file is asked again, not fatal.
  const cached = await Deno.readTextFile(path).then((text) => JSON.parse(text) as CachedAnswer).catch(() => undefined);
  if (cached?.url === url && Array.isArray(cached.explanations)) return cached.explanations;
  if (options.cacheOnly) return undefined;
  let response: Response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), headers: { accept: "application/json" } });
  } catch (error) {
    const timedOut = error instanceof DOMException && error.name === "TimeoutError";
    throw new NeuronpediaUnavailable(
      timedOut
        ? `${baseUrl} did not answer within ${timeoutMs / 1000} s`
        : `${baseUrl} cannot be reached (${describeError(error)})`,
    );
  }
  let explanations: Explanation[];
  if (response.status === 404) {
    await response.body?.cancel();
    explanations = [];
  } else if (!response.ok) {
    await response.body?.cancel();
    throw new NeuronpediaUnavailable(`${baseUrl} answered ${response.status} ${response.statusText}`.trim());
  } else {
    try {
      explanations = parseExplanations(await response.json());
    } catch (error) {
      throw new NeuronpediaUnavailable(`${baseUrl} sent an answer that is not JSON (${describeError(error)})`);
    }
  }
  const answer: CachedAnswer = { url, fetched: new Date().toISOString(), explanations };
  // The cache only saves asking again: a directory that cannot be written must not cost the answer.
  await writeJsonAtomic(path, answer).catch(() => {});
  return explanations;
}

/**
 * Explanations for one report: every feature from the cache, and from the server until its first
 * failure, after which only the cache is used (one attempt per run: an offline report must not wait
 * out a timeout per feature) and `unavailable` says why.
 */
export class ExplanationSource {
  #unavailable: string | undefined;

  /** Explanations of the SAE with Neuronpedia id `id` (`{model}/{source}`). */
  constructor(readonly id: string, private readonly options: ExplanationOptions = {}) {}

  /** Why the server was given up on, if it was. */
  get unavailable(): string | undefined {
    return this.#unavailable;
  }

  /** The explanations of `feature`, or `undefined` when none is cached and the server cannot be asked. */
  async get(feature: number): Promise<Explanation[] | undefined> {
    const slash = this.id.indexOf("/");
    if (slash < 0) return undefined;
    const [model, source] = [this.id.slice(0, slash), this.id.slice(slash + 1)];
    try {
      return await fetchExplanation(model, source, feature, {
        ...this.options,
        cacheOnly: this.#unavailable !== undefined || this.options.cacheOnly,
      });
    } catch (error) {
      if (!(error instanceof NeuronpediaUnavailable)) throw error;
      this.#unavailable = error.message;
      return undefined;
    }
  }
}
