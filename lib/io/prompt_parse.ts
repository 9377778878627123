/**
 * Prompt files, platform-neutral: their bytes (or, for Parquet, a lazily read buffer) in, prompts out.
 * Plain text (one prompt per line), JSON Lines / JSON (strings, objects with a
 * `prompt`/`text`/`content`/`instruction` field, or lmsys-chat-1m rows whose `conversation` holds the
 * turns: the first user turn is taken), CSV (a `prompt`, `text`, `content`, `instruction` or `question` column)
 * and Parquet (lmsys-chat-1m's layout, or a text column). Optionally sampled to N with a seed. Files
 * are read strictly: not text, invalid UTF-8, or records without a prompt are one-line errors. The CLI
 * reads files from disk (lib/io/prompts.ts); a page hands over a picked `File`'s bytes.
 *
 * @module
 */

import { type AsyncBuffer, parquetReadObjects } from "hyparquet";
import { compressors } from "hyparquet-compressors";
import { UserError } from "../core/errors.ts";
import { SeededRandom } from "../core/random.ts";

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

/**
 * A prompt file's text, decoded strictly: a file with NUL bytes is not text (a binary file would
 * otherwise become dozens of "prompts"), and invalid UTF-8 is refused naming its line instead of being
 * replaced with U+FFFD.
 */
function decodeText(bytes: Uint8Array, path: string): string {
  const nul = bytes.indexOf(0);
  if (nul >= 0) {
    throw new UserError(
      `${path} is not a text file (a NUL byte at offset ${nul}): pass prompts as .txt, .jsonl, .json, .csv or .parquet`,
    );
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    let line = 1;
    let start = 0;
    for (let i = 0; i <= bytes.length; i++) {
      if (i < bytes.length && bytes[i] !== 0x0a) continue;
      try {
        new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(start, i));
      } catch {
        break;
      }
      line++;
      start = i + 1;
    }
    throw new UserError(`${path} line ${line} is not valid UTF-8: save the file as UTF-8`);
  }
}

/** Options of {@linkcode parsePrompts}. */
export interface ReadPromptOptions {
  /** Leave out records without a prompt (counted in one `log` line) instead of refusing the file. */
  skipBadRecords?: boolean;
  log?: (line: string) => void;
}

/** One record of a structured prompt file, with where it was (a line or row number, for errors). */
interface Located {
  record: unknown;
  where: string;
}

/**
 * The rows of a CSV text (RFC 4180: `"` quotes, `""` inside quotes, LF, CRLF or CR line ends) as objects
 * keyed by the header row; blank lines are skipped. Our own, because csv-parse needs Node's Buffer, which
 * a browser page lacks; an unclosed quote or a row with more fields than the header is refused.
 */
export function parseCsvRows(text: string): Record<string, string>[] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = "";
  let quoted = false;
  let wasQuoted = false;
  const endField = () => {
    row.push(field);
    field = "";
    wasQuoted = false;
  };
  const endRow = () => {
    endField();
    if (row.length > 1 || row[0] !== "" || wasQuoted) rows.push(row);
    row = [];
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c !== '"') field += c;
      else if (text[i + 1] === '"') field += text[++i];
      else quoted = false;
    } else if (c === '"' && field === "") quoted = wasQuoted = true;
    else if (c === ",") endField();
    else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i++;
      endRow();
    } else field += c;
  }
  if (quoted) throw new Error("a quoted field is not closed before the end of the file");
  if (field !== "" || row.length) endRow();
  const [header, ...body] = rows;
  if (!header) return [];
  return body.map((fields, i) => {
    if (fields.length > header.length) {
      throw new Error(`line ${i + 2} has ${fields.length} fields, the header ${header.length}`);
    }
    return Object.fromEntries(header.map((name, j) => [name, fields[j] ?? ""]));
  });
}

/** The records of a JSON Lines file, each line parsed; a line that is not JSON is refused naming it. */
function jsonLines(text: string, path: string): Located[] {
  const out: Located[] = [];
  text.split("\n").forEach((line, i) => {
    if (!line.trim()) return;
    try {
      out.push({ record: JSON.parse(line), where: `line ${i + 1}` });
    } catch (error) {
      throw new UserError(`${path} line ${i + 1} is not JSON (${(error as Error).message.split("\n")[0]})`);
    }
  });
  return out;
}

/** The lower-cased extension of a file name, with its dot (`""` when it has none). */
function extensionOf(path: string): string {
  const name = path.slice(Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\")) + 1);
  const dot = name.lastIndexOf(".");
  return dot > 0 ? name.slice(dot).toLowerCase() : "";
}

/**
 * All prompts in a prompt file, in file order; the format follows `path`'s extension (`.parquet`,
 * `.jsonl`/`.ndjson`, `.json`, `.csv`, anything else is plain text), and `path` names the file in
 * messages. `data` is the file's bytes, or for Parquet also an {@linkcode AsyncBuffer} read lazily.
 * Records of structured files (JSON Lines, JSON, CSV, Parquet) without a prompt are counted and refused
 * in one line, unless `skipBadRecords`.
 */
export async function parsePrompts(
  data: Uint8Array | AsyncBuffer,
  path: string,
  options: ReadPromptOptions = {},
): Promise<string[]> {
  const extension = extensionOf(path);
  const text = () => {
    if (!(data instanceof Uint8Array)) throw new Error("only a Parquet file may be given as an AsyncBuffer");
    return decodeText(data, path);
  };
  let records: Located[];
  let plain = false;
  try {
    if (extension === ".parquet") {
      const file = data instanceof Uint8Array
        ? data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer
        : data;
      records = (await parquetReadObjects({ file, compressors })).map((record, i) => ({
        record,
        where: `row ${i + 1}`,
      }));
    } else if (extension === ".jsonl" || extension === ".ndjson") {
      records = jsonLines(text(), path);
    } else if (extension === ".json") {
      const data = JSON.parse(text());
      records = (Array.isArray(data) ? data : [data]).map((record, i) => ({ record, where: `record ${i + 1}` }));
    } else if (extension === ".csv") {
      const rows = parseCsvRows(text());
      const columns = Object.keys(rows[0] ?? {});
      const column = TEXT_FIELDS.find((f) => columns.includes(f));
      if (rows.length && !column) {
        throw new UserError(
          `${path} has no prompt column (its columns: ${columns.join(", ")}): name one ${TEXT_FIELDS.join(", ")}`,
        );
      }
      // Row 1 is the header line.
      records = rows.map((r, i) => ({ record: column ? r[column] : undefined, where: `line ${i + 2}` }));
    } else {
      plain = true;
      records = (text()).split("\n").map((l) => l.trimEnd()).filter((l) => l.trim())
        .map((record) => ({ record, where: "" }));
    }
  } catch (error) {
    if (error instanceof UserError) throw error;
    throw new UserError(`could not read prompts from ${path}: ${(error as Error).message.split("\n")[0]}`);
  }
  const prompts: string[] = [];
  const bad: string[] = [];
  for (const { record, where } of records) {
    const prompt = promptOf(record);
    if (typeof prompt === "string" && prompt.trim().length > 0) prompts.push(prompt);
    else if (!plain) bad.push(where);
  }
  if (bad.length && !options.skipBadRecords) {
    throw new UserError(
      `${bad.length} of ${records.length} records in ${path} have no prompt (first: ${bad[0]}; expected a string, a ${
        TEXT_FIELDS.map((f) => `"${f}"`).join("/")
      } field or a "conversation"): fix them, or pass --skip-bad-records to leave them out`,
    );
  }
  if (bad.length) options.log?.(`skipped ${bad.length} of ${records.length} records in ${path} without a prompt`);
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
