/**
 * The on-disk caches as one store: graphs built from checkpoints (`.cache/checkpoints`), rewritten
 * graphs (`.cache/rewritten`) and inline weights moved out of graphs once for every rewrite to share
 * (`.cache/rewritten/shared`). Each entry is a directory named by its key, complete once its stamp file
 * exists; a `last-use` file's modification time records its last use. Sizes are real disk usage
 * (allocated blocks), each inode counted once, and only for inodes the cache alone holds: a hard link
 * to a user's safetensors file costs the cache nothing, and evicting it frees nothing. Past
 * `MODEL_DIFF_CACHE_MAX` the least recently used entries go, never one this process uses or made.
 *
 * @module
 */

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { UserError } from "../errors.ts";
import { replaceDirAtomic } from "../io/atomic.ts";

/** What an entry holds. */
export type CacheKind = "checkpoint" | "rewritten" | "weights";

/** The stamp file whose presence makes an entry complete, per kind (it also names the entry's source). */
const STAMPS: Record<CacheKind, string> = {
  checkpoint: "checkpoint.json",
  rewritten: "rewrite.json",
  weights: "weights.json",
};

/** The name of the stamp file of entries of `kind`: the one place these names are spelled. */
export function stampFile(kind: CacheKind): string {
  return STAMPS[kind];
}

/** The file whose modification time is an entry's last use. */
export const LAST_USE_FILE = "last-use";

/** Files that belong to one entry's bookkeeping and must never be linked into another entry. */
export function isBookkeepingFile(name: string): boolean {
  return name === LAST_USE_FILE || Object.values(STAMPS).includes(name);
}

/** Environment variable of the size cap. */
export const CACHE_MAX_ENV = "MODEL_DIFF_CACHE_MAX";

/**
 * The cap when {@linkcode CACHE_MAX_ENV} is unset: room for a base and a chat 8B model converted to f32
 * (2 x 32 GB) with their rewrites, which share those weights, so a diff never evicts its own inputs.
 */
export const DEFAULT_CACHE_MAX = "100GB";

/**
 * Entries used within this long are kept even when another process made them: that process is
 * probably loading them right now.
 */
const RECENT_USE_MS = 60_000;

/** Where entries of `kind` live (MODEL_DIFF_CHECKPOINT_CACHE, MODEL_DIFF_CACHE override the defaults). */
export function cacheRoot(kind: CacheKind): string {
  if (kind === "checkpoint") {
    return Deno.env.get("MODEL_DIFF_CHECKPOINT_CACHE") ??
      fileURLToPath(new URL("../../.cache/checkpoints", import.meta.url));
  }
  const rewritten = Deno.env.get("MODEL_DIFF_CACHE") ??
    fileURLToPath(new URL("../../.cache/rewritten", import.meta.url));
  // Shared weights sit under the rewritten root: the same filesystem, so rewrites can hard-link them.
  return kind === "rewritten" ? rewritten : join(rewritten, "shared");
}

const UNITS: Record<string, number> = {
  "": 1,
  B: 1,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  TB: 1e12,
  KIB: 2 ** 10,
  MIB: 2 ** 20,
  GIB: 2 ** 30,
  TIB: 2 ** 40,
};

/** Bytes of a size such as `20GB`, `500MB`, `1.5TiB` or `123456`; `what` names the setting in the error. */
export function parseSize(text: string, what: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)?\s*$/i.exec(text);
  if (!match) throw new UserError(`${what}="${text}" is not a size: use e.g. 20GB, 500MB, 1.5TiB or unlimited`);
  return Math.round(Number(match[1]) * UNITS[(match[2] ?? "").toUpperCase()]);
}

/** The cap in bytes from {@linkcode CACHE_MAX_ENV} (default {@linkcode DEFAULT_CACHE_MAX}); Infinity for `unlimited`. */
export function cacheCap(): number {
  const text = Deno.env.get(CACHE_MAX_ENV) ?? DEFAULT_CACHE_MAX;
  if (/^\s*unlimited\s*$/i.test(text)) return Infinity;
  return parseSize(text, CACHE_MAX_ENV);
}

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

/** Entry directories this process has used or made: never evicted by it. */
const inUse = new Set<string>();

/** Writes the last-use file into an entry being filled (its temporary directory). */
async function markNewEntry(tempDir: string): Promise<void> {
  await Deno.writeFile(join(tempDir, LAST_USE_FILE), new Uint8Array());
}

/**
 * Records a use of the entry in `dir` (and of the entries in `uses`, whose files it links): the
 * last-use file's time is set, one metadata write and atomic. The entries are kept from eviction by
 * this process from now on.
 */
export async function useEntry(dir: string, uses: string[] = []): Promise<void> {
  const now = new Date();
  for (const entry of [dir, ...uses]) {
    inUse.add(entry);
    const path = join(entry, LAST_USE_FILE);
    try {
      await Deno.utime(path, now, now);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
      // An entry made before last use was recorded (or a shared entry evicted meanwhile: then no-op).
      if (await Deno.stat(entry).then((s) => s.isDirectory, () => false)) await Deno.writeFile(path, new Uint8Array());
    }
  }
}

/** What every stamp says: what the entry was made from (a model directory or graph). */
export interface StampFields {
  source: string;
}

/** How to make an entry that is not in the cache yet. */
export interface EntryBuild<S extends StampFields> {
  /**
   * Writes the entry's files into `tempDir` (a fresh directory, renamed into place at `dir` once
   * complete) and returns its stamp's fields. Any line saying what is being built is the fill's to log.
   */
  fill: (tempDir: string, dir: string) => Promise<S>;
  /** Other entries whose files this one links (read from its stamp): kept from eviction while it is used. */
  uses?: (stamp: S) => string[] | undefined;
  /** Where eviction lines go. */
  log?: (line: string) => void;
}

/** An entry ready for use. */
export interface ReadyEntry<S extends StampFields> {
  dir: string;
  /** Its stamp, as written when it was made. */
  stamp: S;
  /** Whether this call made it. */
  built: boolean;
}

/**
 * The one way an entry is used or made: its stamp is checked, and a complete entry is used (its
 * last use recorded); otherwise `build.fill` writes it into a temporary sibling, the stamp and the
 * last-use file are added, the whole is renamed into place, and the cache's cap is enforced.
 */
export async function cacheEntry<S extends StampFields>(
  kind: CacheKind,
  key: string,
  build: EntryBuild<S>,
): Promise<ReadyEntry<S>> {
  const dir = join(cacheRoot(kind), key);
  const stampPath = join(dir, STAMPS[kind]);
  const found = await Deno.readTextFile(stampPath).then((text) => JSON.parse(text) as S, () => undefined);
  if (found) {
    await useEntry(dir, build.uses?.(found));
    return { dir, stamp: found, built: false };
  }
  let stamp: S | undefined;
  await replaceDirAtomic(dir, async (temp) => {
    stamp = await build.fill(temp, dir);
    await Deno.writeTextFile(join(temp, STAMPS[kind]), JSON.stringify(stamp, null, 2));
    await markNewEntry(temp);
  });
  await useEntry(dir, build.uses?.(stamp!));
  await enforceCacheCap({ log: build.log });
  return { dir, stamp: stamp!, built: true };
}

/** One complete cache entry. */
export interface CacheEntry {
  kind: CacheKind;
  /** The directory name: the entry's key. */
  id: string;
  dir: string;
  /** What it was made from (a model directory or graph), as its stamp says. */
  source: string;
  /** Bytes that removing this entry alone would free. */
  bytes: number;
  /** Bytes of files it shares with other entries (counted once in the total). */
  sharedBytes: number;
  lastUse: Date;
}

/** Every entry and the cache's total disk usage (each inode counted once, only those the cache alone holds). */
export interface CacheListing {
  entries: CacheEntry[];
  totalBytes: number;
}

interface Inode {
  bytes: number;
  nlink: number;
  /** Links found inside the cache, per entry directory. */
  links: Map<string, number>;
}

interface Scan {
  entries: Omit<CacheEntry, "bytes" | "sharedBytes">[];
  inodes: Map<string, Inode>;
  /** The inode keys of each entry's files. */
  files: Map<string, string[]>;
}

/** Entry directory names are keys (hex); temporary (`….tmp`) and shared subdirectories are not entries. */
function isEntryName(name: string): boolean {
  return /^[0-9a-f]{8,}$/.test(name);
}

async function walk(dir: string, visit: (path: string, info: Deno.FileInfo) => void): Promise<void> {
  for await (const item of Deno.readDir(dir)) {
    const path = join(dir, item.name);
    const info = await Deno.lstat(path).catch(() => undefined);
    if (!info) continue;
    if (info.isDirectory) await walk(path, visit);
    else if (info.isFile) visit(path, info);
  }
}

async function scan(): Promise<Scan> {
  const result: Scan = { entries: [], inodes: new Map(), files: new Map() };
  for (const kind of Object.keys(STAMPS) as CacheKind[]) {
    const root = cacheRoot(kind);
    const names = await Array.fromAsync(Deno.readDir(root)).catch(() => []);
    for (const item of names) {
      if (!item.isDirectory || !isEntryName(item.name)) continue;
      const dir = join(root, item.name);
      const stamp = await Deno.stat(join(dir, STAMPS[kind])).catch(() => undefined);
      if (!stamp) continue; // being built by another process, or left by a crash: not an entry yet
      const source = await Deno.readTextFile(join(dir, STAMPS[kind]))
        .then((text) => String((JSON.parse(text) as { source?: unknown }).source ?? "?"), () => "?");
      const lastUse = await Deno.stat(join(dir, LAST_USE_FILE)).then((s) => s.mtime, () => stamp.mtime);
      const keys: string[] = [];
      await walk(dir, (path, info) => {
        // Without inode numbers (Windows) every file counts as its own.
        const key = info.ino !== null ? `${info.dev}:${info.ino}` : path;
        const bytes = info.blocks !== null ? info.blocks * 512 : info.size;
        const inode = result.inodes.get(key) ?? { bytes, nlink: info.nlink ?? 1, links: new Map() };
        inode.links.set(dir, (inode.links.get(dir) ?? 0) + 1);
        result.inodes.set(key, inode);
        keys.push(key);
      });
      result.files.set(dir, keys);
      result.entries.push({ kind, id: item.name, dir, source, lastUse: lastUse ?? new Date(0) });
    }
  }
  return result;
}

const linksInCache = (inode: Inode) => [...inode.links.values()].reduce((a, b) => a + b, 0);
/** An inode no link outside the cache holds: removing its cache links frees its blocks. */
const cacheOwned = (inode: Inode) => linksInCache(inode) >= inode.nlink;

/** Lists every complete entry of every cache root, least recently used first, with sizes and the total. */
export async function listCache(): Promise<CacheListing> {
  const { entries, inodes, files } = await scan();
  let totalBytes = 0;
  for (const inode of inodes.values()) if (cacheOwned(inode)) totalBytes += inode.bytes;
  const sized = entries.map((entry) => {
    let bytes = 0;
    let sharedBytes = 0;
    for (const key of new Set(files.get(entry.dir))) {
      const inode = inodes.get(key)!;
      if (!cacheOwned(inode)) continue;
      if (inode.links.size === 1) bytes += inode.bytes;
      else sharedBytes += inode.bytes;
    }
    return { ...entry, bytes, sharedBytes };
  });
  return { entries: sized.sort((a, b) => a.lastUse.getTime() - b.lastUse.getTime()), totalBytes };
}

/** Removes an entry: renamed away first, so no reader ever sees it half-deleted with its stamp. */
export async function removeEntry(dir: string): Promise<void> {
  const doomed = `${dir}.${Deno.pid}.${crypto.randomUUID().slice(0, 8)}.evict.tmp`;
  await Deno.rename(dir, doomed);
  await Deno.remove(doomed, { recursive: true });
}

/** What {@linkcode enforceCacheCap} did. */
export interface Eviction {
  evicted: CacheEntry[];
  /** The total after eviction (may stay above the cap when only entries in use are left). */
  totalBytes: number;
  capBytes: number;
}

/**
 * Evicts least recently used entries while the cache's total exceeds the cap, skipping entries this
 * process has used or made and entries used in the last minute (another process may be loading them).
 * Freed bytes are computed per inode: an entry whose files other entries also link frees only the rest.
 */
export async function enforceCacheCap(options: { log?: (line: string) => void } = {}): Promise<Eviction> {
  const capBytes = cacheCap();
  const { entries, inodes, files } = await scan();
  let totalBytes = 0;
  for (const inode of inodes.values()) if (cacheOwned(inode)) totalBytes += inode.bytes;
  const evicted: CacheEntry[] = [];
  if (totalBytes <= capBytes) return { evicted, totalBytes, capBytes };
  const now = Date.now();
  const candidates = entries
    .filter((e) => !inUse.has(e.dir) && now - e.lastUse.getTime() > RECENT_USE_MS)
    .sort((a, b) => a.lastUse.getTime() - b.lastUse.getTime());
  for (const entry of candidates) {
    if (totalBytes <= capBytes) break;
    let freed = 0;
    for (const key of new Set(files.get(entry.dir))) {
      const inode = inodes.get(key)!;
      const owned = cacheOwned(inode);
      inode.links.delete(entry.dir);
      if (owned && inode.links.size === 0) freed += inode.bytes;
    }
    await removeEntry(entry.dir);
    totalBytes -= freed;
    evicted.push({ ...entry, bytes: freed, sharedBytes: 0 });
    options.log?.(
      `cache over ${CACHE_MAX_ENV}=${
        formatSize(capBytes)
      }: evicted the least recently used ${entry.kind} entry ${entry.id} (${entry.source}, freed ${formatSize(freed)})`,
    );
  }
  return { evicted, totalBytes, capBytes };
}

/** Milliseconds of an age such as `30m`, `12h`, `7d` or `2w`; `what` names the flag in the error. */
export function parseAge(text: string, what: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$/i.exec(text);
  if (!match) throw new UserError(`${what} "${text}" is not an age: use e.g. 30m, 12h, 7d or 2w`);
  const unit = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 }[match[2].toLowerCase() as "s"]!;
  return Number(match[1]) * unit * 1000;
}

/**
 * Removes entries: those whose id starts with one of `ids` (each must name exactly one entry), or all,
 * and of those only the ones last used more than `olderThanMs` ago. Returns what went and the bytes
 * freed (the total before minus after: files other entries still link stay).
 */
export async function clearCache(
  options: { ids?: string[]; olderThanMs?: number } = {},
): Promise<{ removed: CacheEntry[]; freedBytes: number }> {
  const before = await listCache();
  let chosen = before.entries;
  if (options.ids?.length) {
    chosen = options.ids.map((id) => {
      const matches = before.entries.filter((e) => e.id.startsWith(id));
      if (matches.length !== 1) {
        throw new UserError(
          `${
            matches.length ? "several" : "no"
          } cache entries match "${id}": pass an id (or a unique prefix) from deno task cache`,
        );
      }
      return matches[0];
    });
  }
  if (options.olderThanMs !== undefined) {
    const limit = Date.now() - options.olderThanMs;
    chosen = chosen.filter((e) => e.lastUse.getTime() < limit);
  }
  for (const entry of chosen) await removeEntry(entry.dir);
  return { removed: chosen, freedBytes: before.totalBytes - (await listCache()).totalBytes };
}
