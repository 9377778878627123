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
import process from "node:process";
import { UserError } from "../core/errors.ts";
import { HOST_TAG, replaceDirAtomic } from "./atomic.ts";
import { diskFullError, errorCode, formatSize, isDiskFull, isNotWritable } from "./disk.ts";
import { readRangeInto } from "./files.ts";

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

export { formatSize };

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
      // A read-only cache (or one another user owns) is used as it is: the stamp only orders eviction.
      if (!(error instanceof Deno.errors.NotFound)) continue;
      // An entry made before last use was recorded (or a shared entry evicted meanwhile: then no-op).
      if (await Deno.stat(entry).then((s) => s.isDirectory, () => false)) {
        await Deno.writeFile(path, new Uint8Array()).catch(() => {});
      }
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

/** What an entry's stamp records of each file it holds, to verify it before it is trusted. */
export interface FileRecord {
  /** Bytes, as made. */
  size: number;
  /** SHA-256 of the whole file up to {@linkcode WHOLE_FILE_BYTES}, else of {@linkcode SAMPLE_BLOCKS} blocks spread over it. */
  sample: string;
}

/** Files up to this size are digested whole (graphs, configs, tokenizers): a garbage `model.onnx` is caught. */
const WHOLE_FILE_BYTES = 1 << 20;
/** Larger files (weights) are digested in this many blocks, first and last included: 64 KiB read per file. */
const SAMPLE_BLOCKS = 16;
const SAMPLE_BLOCK_BYTES = 4096;

/** The digest recorded for a file of `size` bytes at `path` (see {@linkcode FileRecord}). */
async function sampleDigest(path: string, size: number): Promise<string> {
  const file = await Deno.open(path);
  try {
    let bytes: Uint8Array<ArrayBuffer>;
    if (size <= WHOLE_FILE_BYTES) {
      bytes = new Uint8Array(size);
      await readRangeInto(file, 0, bytes, path);
    } else {
      bytes = new Uint8Array(SAMPLE_BLOCKS * SAMPLE_BLOCK_BYTES);
      for (let i = 0; i < SAMPLE_BLOCKS; i++) {
        const at = Math.floor((i * (size - SAMPLE_BLOCK_BYTES)) / (SAMPLE_BLOCKS - 1));
        await readRangeInto(file, at, bytes.subarray(i * SAMPLE_BLOCK_BYTES, (i + 1) * SAMPLE_BLOCK_BYTES), path);
      }
    }
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
    return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
  } finally {
    file.close();
  }
}

/** The files of an entry being made (links followed), bookkeeping left out, by path relative to `dir`. */
async function recordFiles(dir: string, prefix = ""): Promise<Record<string, FileRecord>> {
  const out: Record<string, FileRecord> = {};
  const names = (await Array.fromAsync(Deno.readDir(join(dir, prefix)))).map((e) => e.name).sort();
  for (const name of names) {
    const relative = prefix ? `${prefix}/${name}` : name;
    if (!prefix && isBookkeepingFile(name)) continue;
    const info = await Deno.stat(join(dir, relative));
    if (info.isDirectory) Object.assign(out, await recordFiles(dir, relative));
    else if (info.isFile) {
      out[relative] = { size: info.size, sample: await sampleDigest(join(dir, relative), info.size) };
    }
  }
  return out;
}

/** Why the entry in `dir` cannot be trusted (a file missing, resized or changed), or undefined when it can. */
async function damageOf(dir: string, files: Record<string, FileRecord> | undefined): Promise<string | undefined> {
  if (!files || typeof files !== "object") return "its stamp records none of its files";
  for (const [relative, record] of Object.entries(files)) {
    const info = await Deno.stat(join(dir, relative)).catch(() => undefined);
    if (!info?.isFile) return `${relative} is missing`;
    if (info.size !== record.size) return `${relative} holds ${info.size} bytes, ${record.size} when it was made`;
    const sample = await sampleDigest(join(dir, relative), info.size).catch(() => "");
    if (sample !== record.sample) return `${relative} changed since it was made`;
  }
  return undefined;
}

/** The stamp of the entry in `dir` and, when it cannot be trusted, why. Undefined: there is no entry. */
async function readEntry<S>(
  kind: CacheKind,
  dir: string,
): Promise<{ stamp?: S & { files?: Record<string, FileRecord> }; damage?: string } | undefined> {
  const exists = await Deno.stat(dir).then((s) => s.isDirectory, () => false);
  if (!exists) return undefined;
  let text: string;
  try {
    text = await Deno.readTextFile(join(dir, STAMPS[kind]));
  } catch {
    return { damage: `its stamp ${STAMPS[kind]} is missing` };
  }
  let stamp: S & { files?: Record<string, FileRecord> };
  try {
    stamp = JSON.parse(text);
  } catch {
    return { damage: `its stamp ${STAMPS[kind]} is not valid JSON` };
  }
  return { stamp, damage: await damageOf(dir, stamp.files) };
}

/** The environment variable that moves the cache of `kind`. */
function rootEnv(kind: CacheKind): string {
  return kind === "checkpoint" ? "MODEL_DIFF_CHECKPOINT_CACHE" : "MODEL_DIFF_CACHE";
}

/** Disk usage of everything under `dir` (0 if it is gone). */
async function diskUsage(dir: string): Promise<number> {
  let bytes = 0;
  await walk(dir, (_, info) => bytes += info.blocks !== null ? info.blocks * 512 : info.size).catch(() => {});
  return bytes;
}

/**
 * The one way an entry is used or made. A complete entry (stamp present) is verified against what its
 * stamp recorded of its files (sizes, and a digest of each small file or of a sample of each large
 * one) and then used, its last use recorded when the cache is writable. A damaged one is rebuilt with
 * one line saying so. To make one, the unfinished builds of the same key that dead processes left are
 * removed, `build.fill` writes into a temporary sibling, the stamp (with the record of the files) and
 * the last-use file are added, the whole is renamed into place, and the cache's cap is enforced. A
 * full disk or a cache that cannot be written is one line naming the folder.
 */
export async function cacheEntry<S extends StampFields>(
  kind: CacheKind,
  key: string,
  build: EntryBuild<S>,
): Promise<ReadyEntry<S>> {
  const root = cacheRoot(kind);
  const dir = join(root, key);
  const found = await readEntry<S>(kind, dir);
  if (found?.stamp && !found.damage) {
    const { files: _, ...stamp } = found.stamp;
    await useEntry(dir, build.uses?.(stamp as S));
    return { dir, stamp: stamp as S, built: false };
  }
  if (found?.damage) build.log?.(`the cache entry ${dir} is damaged (${found.damage}): rebuilding it`);
  await removeUnfinished(root, key, build.log);
  let stamp: S | undefined;
  try {
    await replaceDirAtomic(dir, async (temp) => {
      try {
        stamp = await build.fill(temp, dir);
        const files = await recordFiles(temp);
        await Deno.writeTextFile(join(temp, STAMPS[kind]), JSON.stringify({ ...stamp, files }, null, 2));
        await markNewEntry(temp);
      } catch (error) {
        if (!isDiskFull(error)) throw error;
        throw diskFullError(
          root,
          `building the ${kind} entry ${key}`,
          await diskUsage(temp),
          `that much was written when the disk filled, and the entry needs more: free space or set ${
            rootEnv(kind)
          } to a folder on a larger disk`,
        );
      }
    });
  } catch (error) {
    if (!isNotWritable(error) || !String((error as Error).message).includes(root)) throw error;
    throw new UserError(
      `the cache folder ${root} cannot be written (${errorCode(error) ?? "permission denied"}) and ${
        found ? `its entry ${key} is damaged (${found.damage})` : `has no entry ${key}`
      }: make it writable, or set ${rootEnv(kind)} to a writable folder`,
    );
  }
  await useEntry(dir, build.uses?.(stamp!));
  await enforceCacheCap({ log: build.log });
  return { dir, stamp: stamp!, built: true };
}

/**
 * Temporary directories are `<key>.<pid>-<host>.<random>.tmp` (a build), `….tmp.old` (an entry being
 * replaced) and `….evict.tmp` (an entry being removed); see `replaceDirAtomic` and {@linkcode removeEntry}.
 * Names without `-<host>` (older versions) are taken as this machine's.
 */
const TEMP_NAME = /^([0-9a-f]{8,})\.(\d+)(?:-([0-9a-f]{8}))?\.([0-9a-f]{8})\.(?:tmp|tmp\.old|evict\.tmp)$/;

/**
 * Whether process `pid` is alive on this machine: signal 0 probes without sending anything (a process
 * of another user answers EPERM: alive). A reused pid reads as alive, which only spares a leftover.
 */
function processAlive(pid: number): boolean {
  if (pid === Deno.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return errorCode(error) !== "ESRCH";
  }
}

/**
 * The process that left the temporary directory `name`, if it is one and that process is gone. Another
 * machine's build is never judged: its pid says nothing about a process there.
 */
function deadOwner(name: string): { key: string; pid: number } | undefined {
  const match = TEMP_NAME.exec(name);
  if (!match || (match[3] !== undefined && match[3] !== HOST_TAG)) return undefined;
  const pid = Number(match[2]);
  return processAlive(pid) ? undefined : { key: match[1], pid };
}

/** Removes what dead processes left while building entry `key` under `root`, one line each. */
async function removeUnfinished(root: string, key: string, log?: (line: string) => void): Promise<void> {
  const names = await Array.fromAsync(Deno.readDir(root)).catch(() => [] as Deno.DirEntry[]);
  for (const item of names) {
    const owner = deadOwner(item.name);
    if (!owner || owner.key !== key) continue;
    const path = join(root, item.name);
    const bytes = await diskUsage(path);
    // Another process may be removing it too: gone is gone.
    if (await Deno.remove(path, { recursive: true }).then(() => true, () => false)) {
      log?.(`removed ${path}, an unfinished build of process ${owner.pid} (gone), ${formatSize(bytes)}`);
    }
  }
}

/** One complete cache entry. */
export interface CacheEntry {
  kind: CacheKind;
  /** The directory name: the entry's key (an unfinished build's whole temporary name). */
  id: string;
  dir: string;
  /** What it was made from (a model directory or graph), as its stamp says. */
  source: string;
  /**
   * Set for a temporary build directory whose process is gone (killed mid-build): never complete,
   * counted against the cap and removed first, by `cache clear` and by the next build of its key.
   */
  unfinished?: { key: string; pid: number };
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
      if (!item.isDirectory) continue;
      const dir = join(root, item.name);
      // A build of a process that is gone counts (its partial weights can be tens of GB); one in
      // progress is its process's alone and is not touched.
      const unfinished = deadOwner(item.name);
      let source: string;
      let lastUse: Date | null;
      if (unfinished) {
        source = `unfinished build of process ${unfinished.pid} (gone)`;
        lastUse = (await Deno.stat(dir)).mtime;
      } else {
        if (!isEntryName(item.name)) continue;
        const stamp = await Deno.stat(join(dir, STAMPS[kind])).catch(() => undefined);
        if (!stamp) continue; // being built by another process: not an entry yet
        source = await Deno.readTextFile(join(dir, STAMPS[kind]))
          .then((text) => String((JSON.parse(text) as { source?: unknown }).source ?? "?"), () => "?");
        lastUse = await Deno.stat(join(dir, LAST_USE_FILE)).then((s) => s.mtime, () => stamp.mtime);
      }
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
      result.entries.push({
        kind,
        id: item.name,
        dir,
        source,
        lastUse: lastUse ?? new Date(0),
        ...(unfinished ? { unfinished } : {}),
      });
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

/** Removes a listed entry; an unfinished build is nobody's, so it goes without being renamed first. */
async function discard(entry: Pick<CacheEntry, "dir" | "unfinished">): Promise<void> {
  if (entry.unfinished) await Deno.remove(entry.dir, { recursive: true }).catch(() => {});
  else await removeEntry(entry.dir);
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
  // Unfinished builds of dead processes first (nobody can use them), then least recently used.
  const candidates = entries
    .filter((e) => e.unfinished || (!inUse.has(e.dir) && now - e.lastUse.getTime() > RECENT_USE_MS))
    .sort((a, b) => Number(!a.unfinished) - Number(!b.unfinished) || a.lastUse.getTime() - b.lastUse.getTime());
  for (const entry of candidates) {
    if (totalBytes <= capBytes) break;
    let freed = 0;
    for (const key of new Set(files.get(entry.dir))) {
      const inode = inodes.get(key)!;
      const owned = cacheOwned(inode);
      inode.links.delete(entry.dir);
      if (owned && inode.links.size === 0) freed += inode.bytes;
    }
    await discard(entry);
    totalBytes -= freed;
    evicted.push({ ...entry, bytes: freed, sharedBytes: 0 });
    options.log?.(
      `cache over ${CACHE_MAX_ENV}=${formatSize(capBytes)}: ${
        entry.unfinished
          ? `removed ${entry.id}, an unfinished ${entry.kind} build of process ${entry.unfinished.pid} (gone)`
          : `evicted the least recently used ${entry.kind} entry ${entry.id} (${entry.source}`
      }, freed ${formatSize(freed)})`,
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
 * Removes entries: those whose id starts with one of `ids` (each must name exactly one complete entry,
 * which takes its key's unfinished builds along, or only unfinished builds), or all, and of those only
 * the ones last used more than `olderThanMs` ago. Unfinished builds of dead processes count as entries.
 * Returns what went and the bytes freed (the total before minus after: files other entries still link
 * stay).
 */
export async function clearCache(
  options: { ids?: string[]; olderThanMs?: number } = {},
): Promise<{ removed: CacheEntry[]; freedBytes: number }> {
  const before = await listCache();
  let chosen = before.entries;
  if (options.ids?.length) {
    chosen = [
      ...new Set(options.ids.flatMap((id) => {
        const matches = before.entries.filter((e) => e.id.startsWith(id));
        const complete = matches.filter((e) => !e.unfinished);
        if (complete.length === 1) {
          return [complete[0], ...matches.filter((e) => e.unfinished?.key === complete[0].id)];
        }
        if (!complete.length && matches.length) return matches;
        throw new UserError(
          `${
            complete.length ? "several" : "no"
          } cache entries match "${id}": pass an id (or a unique prefix) from deno task cache`,
        );
      })),
    ];
  }
  if (options.olderThanMs !== undefined) {
    const limit = Date.now() - options.olderThanMs;
    chosen = chosen.filter((e) => e.lastUse.getTime() < limit);
  }
  for (const entry of chosen) await discard(entry);
  return { removed: chosen, freedBytes: before.totalBytes - (await listCache()).totalBytes };
}
