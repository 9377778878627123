/**
 * Prompt files: plain text (one prompt per line), JSON Lines / JSON (strings, objects with a
 * `prompt`/`text`/`content`/`instruction` field, or lmsys-chat-1m rows whose `conversation` holds the
 * turns: the first user turn is taken), CSV (a `prompt`, `text` or `content` column, else the first)
 * and Parquet (lmsys-chat-1m's layout, or a text column). Optionally sampled to N with a seed.
 *
 * @module
 */

import { parse as parseCsv } from "csv-parse/sync";
import { asyncBufferFromFile, parquetReadObjects } from "hyparquet";
import { compressors } from "hyparquet-compressors";
import { extname } from "node:path";
import { readUserFile, UserError } from "../errors.ts";
import { SeededRandom } from "../random.ts";

const TEXT_FIELDS = ["prompt", "text", "content", "instruction", "question"];

/** The prompt in one record: a string, a text field, or the first user turn of a conversation. */
export function promptOf(record: unknown): string | undefined {
  if (typeof record === "string") return record;
  if (!record || typeof record !== "object") return undefined;
  const object = record as Record<string, unknown>;
  for (const key of ["conversation", "messages", "conversations"]) {
    const turns = object[key];
    if (Array.isArray(turns)) {
      const first = turns.find((t) =>
        t && typeof t === "object" && ["user", "human"].includes(String(t.role ?? t.from))
      );
      const text = first?.content ?? first?.value;
      if (typeof text === "string") return text;
    }
  }
  for (const key of TEXT_FIELDS) if (typeof object[key] === "string") return object[key] as string;
  return undefined;
}

async function readText(path: string): Promise<string> {
  return new TextDecoder().decode(await readUserFile(path, "prompt file"));
}

/** All prompts in a file, in file order. */
export async function readPromptFile(path: string): Promise<string[]> {
  const extension = extname(path).toLowerCase();
  let records: unknown[];
  try {
    if (extension === ".parquet") {
      await Deno.stat(path).catch(() => {
        throw new UserError(`prompt file not found: ${path}`);
      });
      const file = await asyncBufferFromFile(path);
      records = await parquetReadObjects({ file, compressors });
    } else if (extension === ".jsonl" || extension === ".ndjson") {
      records = (await readText(path)).split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));
    } else if (extension === ".json") {
      const data = JSON.parse(await readText(path));
      records = Array.isArray(data) ? data : [data];
    } else if (extension === ".csv") {
      const rows: Record<string, string>[] = parseCsv(await readText(path), { columns: true, skip_empty_lines: true });
      const column = TEXT_FIELDS.find((f) => rows.length && f in rows[0]) ?? Object.keys(rows[0] ?? {})[0];
      records = rows.map((r) => r[column]);
    } else {
      records = (await readText(path)).split("\n").map((l) => l.trimEnd()).filter((l) => l.trim());
    }
  } catch (error) {
    if (error instanceof UserError) throw error;
    throw new UserError(`could not read prompts from ${path}: ${(error as Error).message.split("\n")[0]}`);
  }
  const prompts = records.map(promptOf).filter((p): p is string => typeof p === "string" && p.trim().length > 0);
  if (!prompts.length) {
    throw new UserError(
      `no prompts in ${path}: expected one prompt per line (.txt), JSON Lines with a "prompt"/"text" field or a "conversation", a CSV with a prompt column, or lmsys-style Parquet`,
    );
  }
  return prompts;
}

/** `count` prompts drawn without replacement with `seed` (all of them, in order, when count is absent or larger). */
export function samplePrompts(prompts: string[], count: number | undefined, seed: number): string[] {
  if (count === undefined || count >= prompts.length) return prompts;
  const random = new SeededRandom(seed);
  const indices = prompts.map((_, i) => i);
  for (let i = 0; i < count; i++) {
    const j = i + Math.floor(random.uniform() * (indices.length - i));
    [indices[i], indices[j]] = [indices[j], indices[i]];
  }
  return indices.slice(0, count).map((i) => prompts[i]);
}
