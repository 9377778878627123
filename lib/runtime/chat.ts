/**
 * Chat formatting with the model's own template, and the read positions that template implies (the turn
 * headers are derived by rendering probe conversations, never looked up in a table of families).
 *
 * @module
 */

import { UserError } from "../core/errors.ts";
import type { ModelHandle } from "./runtime.ts";

/** One chat message, as Hugging Face chat templates take it. */
export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

/** Renders `messages` with the tokenizer's chat template; `generationPrompt` appends the assistant header. */
export function renderChat(
  handle: Pick<ModelHandle, "tokenizer" | "source">,
  messages: ChatMessage[],
  options: { generationPrompt?: boolean } = {},
): string {
  if (!handle.tokenizer.chat_template) {
    throw new UserError(
      `${handle.source} has no chat template (its tokenizer_config.json has no chat_template): capture reads plain text with --raw; the role swap, steering and generation need a chat model (--model), and two-model tasks format both with the --chat model's template`,
    );
  }
  try {
    return handle.tokenizer.apply_chat_template(messages, {
      add_generation_prompt: options.generationPrompt ?? true,
      tokenize: false,
    }) as string;
  } catch (error) {
    throw new UserError(`chat template of ${handle.source} failed: ${(error as Error).message}`);
  }
}

/** Token ids of an already rendered chat text (the template supplies BOS, so none is added). */
export function tokenizeRendered(handle: Pick<ModelHandle, "tokenizer">, text: string): number[] {
  return handle.tokenizer.encode(text, { add_special_tokens: false });
}

/** The read positions of the diff: around the assistant header that ends a chat prompt. */
export const TOKEN_TYPES = ["asst", "endheader", "newline"] as const;

/** One read position. */
export type TokenType = typeof TOKEN_TYPES[number];

/** Parses a comma-separated list of token types. */
export function parseTokenTypes(value: string): TokenType[] {
  const types = value.split(",").map((s) => s.trim());
  for (const type of types) {
    if (!(TOKEN_TYPES as readonly string[]).includes(type)) {
      throw new UserError(`unknown token type "${type}": use any of ${TOKEN_TYPES.join(",")}`);
    }
  }
  return types as TokenType[];
}

/**
 * A turn header as the read positions use it: the tokens to find, and where each token type sits
 * relative to them (position = match start + `ids.length` + offset, the upstream library's rule).
 */
export interface TurnHeader {
  ids: number[];
  offsets: Record<TokenType, number>;
}

/**
 * What a model's own chat template says about its turns, found by rendering probe conversations
 * with it (nothing here is a table of families).
 */
export interface ChatFormat {
  /** The header that opens the assistant's reply: what the generation prompt adds. */
  assistant: TurnHeader;
  /** The header that opens a user turn after an assistant turn (the role swap reads after it). */
  user: TurnHeader;
  /** The token that closes an assistant turn (`<|eot_id|>`, `<end_of_turn>`, `<|im_end|>`, `</s>`), if any. */
  endOfTurn: number[];
}

/** Probe contents: plain words that no template rewrites and that end at a token boundary. */
const USER_PROBE = "Hello.";
const REPLY_PROBE = "Hi there.";

function commonPrefixLength(a: readonly number[], b: readonly number[]): number {
  let n = 0;
  while (n < a.length && n < b.length && a[n] === b[n]) n++;
  return n;
}

/**
 * The tokens of rendered `text` after its first `prefixLength` characters, tokenized in place: the
 * tokens of the whole text past those it shares with the prefix alone (a token that straddles the
 * boundary counts as after it).
 */
function tokensAfter(handle: Pick<ModelHandle, "tokenizer">, text: string, prefixLength: number): number[] {
  const all = tokenizeRendered(handle, text);
  return all.slice(commonPrefixLength(all, tokenizeRendered(handle, text.slice(0, prefixLength))));
}

/**
 * A special token (`<|start_header_id|>`, `<start_of_turn>`, `<|im_start|>`): one the tokenizer drops
 * when asked to skip special tokens, though it has text of its own (SentencePiece's bare "▁" also
 * decodes to nothing and is not special).
 */
function isSpecial(handle: Pick<ModelHandle, "tokenizer">, id: number): boolean {
  return handle.tokenizer.decode([id], { skip_special_tokens: true }) === "" && handle.tokenizer.decode([id]) !== "";
}

/** A token with a letter that is not special: a role name, or a piece of `[/INST]`. */
function isWordLike(handle: Pick<ModelHandle, "tokenizer">, id: number): boolean {
  return !isSpecial(handle, id) && /\p{L}/u.test(handle.tokenizer.decode([id]));
}

/**
 * The read positions in a turn header's tokens: `asst` is the role-name token (the first word-like
 * token after the special token that opens the turn: "assistant", "model"; anything the generation
 * prompt adds after it, such as a reasoning model's `<think>`, is not the role); the header ends at
 * the last special token after it (Llama 3's `<|end_header_id|>`, whose "\n\n" is then `newline`) or
 * else with the added tokens (Gemma's and ChatML's "\n", after which `newline` clamps to the end of a
 * generation prompt). A header that opens with no special token (Mistral's `[/INST]` as SentencePiece
 * pieces) reads its last word-like token ("INST") as `asst`.
 */
function turnHeader(handle: Pick<ModelHandle, "tokenizer">, added: readonly number[]): TurnHeader {
  const opener = added.findIndex((id) => isSpecial(handle, id));
  const afterOpener = opener >= 0 ? added.findIndex((id, i) => i > opener && isWordLike(handle, id)) : -1;
  const role = afterOpener >= 0 ? afterOpener : added.findLastIndex((id) => isWordLike(handle, id));
  if (role < 0) throw new Error("a turn header without a role token"); // chatFormat refuses these first
  const closing = added.findLastIndex((id, i) => i > role && isSpecial(handle, id));
  const ids = added.slice(0, (closing >= 0 ? closing : added.length - 1) + 1);
  return { ids, offsets: { asst: role - ids.length, endheader: -1, newline: 0 } };
}

const formats = new WeakMap<object, ChatFormat>();

/**
 * The chat format of a model, derived from its chat template: the assistant header is what the
 * generation prompt adds to a rendered user turn (or, where it adds nothing, as in Mistral-Instruct's
 * `[INST] … [/INST]`, what closes the user turn); the user header is what opens a user turn after an
 * assistant turn, less the text that closes the assistant turn (the end of turn).
 */
export function chatFormat(handle: Pick<ModelHandle, "tokenizer" | "source">): ChatFormat {
  const cached = formats.get(handle.tokenizer);
  if (cached) return cached;
  const user = { role: "user", content: USER_PROBE } as const;
  const reply = { role: "assistant", content: REPLY_PROBE } as const;
  const prompted = renderChat(handle, [user], { generationPrompt: true });
  const plain = renderChat(handle, [user], { generationPrompt: false });
  const contentEnd = (text: string, probe: string) => {
    const at = text.lastIndexOf(probe);
    if (at < 0) throw new UserError(`the chat template of ${handle.source} drops message content`);
    return at + probe.length;
  };
  const assistantAdded = prompted.length > plain.length && prompted.startsWith(plain)
    ? tokensAfter(handle, prompted, plain.length)
    : tokensAfter(handle, prompted, contentEnd(prompted, USER_PROBE));
  // A header needs a role name (or the word of a closing tag such as [/INST]): a template that only
  // ends the user's turn (`<|eot_id|>`, an EOS) marks no assistant turn to read at.
  const noHeader = (ids: number[]) => !ids.some((id) => isWordLike(handle, id));
  if (noHeader(assistantAdded)) {
    throw new UserError(
      `the chat template of ${handle.source} marks no assistant turn after a user message, so there is no header to read at: pass --raw`,
    );
  }
  // The end of an assistant turn, then the user header after it.
  const replied = renderChat(handle, [user, reply], { generationPrompt: false });
  const replyEnd = contentEnd(replied, REPLY_PROBE);
  const turnEnd = replied.slice(replyEnd);
  const reopened = renderOpenTurn(handle, [user, reply]);
  const between = reopened.slice(contentEnd(reopened, REPLY_PROBE));
  const userStart = reopened.length - between.length + (between.startsWith(turnEnd) ? turnEnd.length : 0);
  const userAdded = tokensAfter(handle, reopened, userStart);
  if (noHeader(userAdded)) {
    throw new UserError(
      `the chat template of ${handle.source} marks no user turn after an assistant turn, so the role swap has no header to read at`,
    );
  }
  // The first token after the reply, unless it straddles the reply's last characters (then the
  // tokenizer's EOS stands in: see steeringSuppressedIds).
  const [closer] = tokensAfter(handle, replied, replyEnd);
  const closes = closer !== undefined && turnEnd.startsWith(handle.tokenizer.decode([closer]));
  const format: ChatFormat = {
    assistant: turnHeader(handle, assistantAdded),
    user: turnHeader(handle, userAdded),
    endOfTurn: closes ? [closer] : [],
  };
  formats.set(handle.tokenizer, format);
  return format;
}

/** The header of `role`'s turn for a loaded model. */
export function turnHeaderOf(
  handle: Pick<ModelHandle, "tokenizer" | "source">,
  role: "assistant" | "user",
): TurnHeader {
  return chatFormat(handle)[role];
}

/**
 * Which header the read positions follow: the notebook's rule is the first assistant header; in the
 * role-swapped format the prompt sits in the model's turn, so its first header precedes the prompt
 * (and is the same for every prompt); there the positions follow the last header, the user turn
 * that opens after the prompt, so that in both formats they read the turn header after the prompt.
 */
export interface HeaderRule {
  role: "assistant" | "user";
  occurrence: "first" | "last";
}

/** The notebook's rule: after the first assistant header. */
export const NORMAL_HEADER: HeaderRule = { role: "assistant", occurrence: "first" };
/** The role-swapped format's rule: after the last (open) user header. */
export const SWAPPED_HEADER: HeaderRule = { role: "user", occurrence: "last" };

/** Where each token type sits in one sequence, and whether the header was found. */
export interface ReadPositions {
  positions: number[];
  headerFound: boolean;
}

/** Index of the first (or last) occurrence of `needle` in `haystack`, or -1. */
export function findSubsequence(
  haystack: readonly number[],
  needle: readonly number[],
  occurrence: "first" | "last" = "first",
): number {
  if (needle.length === 0) return -1; // an empty header is found nowhere, not everywhere
  let found = -1;
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    if (occurrence === "first") return i;
    found = i;
  }
  return found;
}

/**
 * Read positions of `types` in token sequence `ids` (unpadded): after the first (or last) occurrence
 * of `header`, clamped into the sequence; without a header, the last token (the caller counts these).
 */
export function readPositions(
  ids: readonly number[],
  header: TurnHeader | undefined,
  types: readonly TokenType[],
  occurrence: "first" | "last" = "first",
): ReadPositions {
  const start = header ? findSubsequence(ids, header.ids, occurrence) : -1;
  if (!header || start < 0) return { positions: types.map(() => ids.length - 1), headerFound: false };
  const positions = types.map((type) =>
    Math.min(ids.length - 1, Math.max(0, start + header.ids.length + header.offsets[type]))
  );
  return { positions, headerFound: true };
}

/**
 * Shortens `ids` to `maxLength` tokens, keeping the start and the final `keepTail` tokens (the
 * generation header, so read positions survive); returns whether it had to.
 */
export function truncateIds(ids: number[], maxLength: number, keepTail: number): { ids: number[]; truncated: boolean } {
  if (ids.length <= maxLength) return { ids, truncated: false };
  const tail = Math.min(keepTail, maxLength);
  return { ids: [...ids.slice(0, maxLength - tail), ...ids.slice(ids.length - tail)], truncated: true };
}

/** A prompt ready to run: its rendered text, token ids and where to read it. */
export interface PreparedPrompt {
  prompt: string;
  text: string;
  ids: number[];
  /** Read positions, one per requested token type (empty when none were requested). */
  positions: number[];
  headerFound: boolean;
  truncated: boolean;
}

/** Options of {@linkcode preparePrompts}. */
export interface PrepareOptions {
  /**
   * Tokenize the prompt as is, without the chat template (read positions then follow a header only
   * where the text already holds one, and the model has a template to say what one looks like).
   */
  raw?: boolean;
  /** How to render a prompt (default: a user turn plus the generation prompt). */
  render?: (prompt: string) => string;
  maxLength?: number;
  types?: readonly TokenType[];
  /** Which header the read positions follow (default {@linkcode NORMAL_HEADER}). */
  header?: HeaderRule;
}

/**
 * Renders each prompt as a user turn with the generation prompt (unless raw), tokenizes, truncates
 * to `maxLength` keeping the assistant header, and finds the read positions.
 */
export function preparePrompts(
  handle: Pick<ModelHandle, "tokenizer" | "config" | "source">,
  prompts: readonly string[],
  options: PrepareOptions = {},
): PreparedPrompt[] {
  const rule = options.header ?? NORMAL_HEADER;
  const types = options.types ?? [];
  const header = options.raw && (types.length === 0 || !handle.tokenizer.chat_template)
    ? undefined
    : turnHeaderOf(handle, rule.role);
  return prompts.map((prompt) => {
    const text = options.raw ? prompt : options.render ? options.render(prompt) : renderNormal(handle, prompt);
    const all = options.raw
      ? handle.tokenizer.encode(text, { add_special_tokens: true })
      : tokenizeRendered(handle, text);
    const { ids, truncated } = options.maxLength
      ? truncateIds(all, options.maxLength, options.raw || !header ? 0 : header.ids.length + 1)
      : { ids: all, truncated: false };
    const { positions, headerFound } = readPositions(ids, header, types, rule.occurrence);
    return { prompt, text, ids, positions, headerFound, truncated };
  });
}

/** Marks where an open user turn's content would start, to cut a rendered template there. */
const OPEN_TURN_SENTINEL = "\u2063OPEN_TURN\u2063";

/**
 * The role-swapped format, built from messages and rendered by the model's own template: the user
 * says "Hello.", the model's turn holds `prompt`, then a user turn is opened (its header rendered,
 * its content empty) so the model continues as the user would.
 */
export function renderSwapped(handle: Pick<ModelHandle, "tokenizer" | "source">, prompt: string): string {
  return renderOpenTurn(handle, [{ role: "user", content: "Hello." }, { role: "assistant", content: prompt }]);
}

/** `messages` rendered by the model's template, then a user turn opened: its header, no content. */
function renderOpenTurn(handle: Pick<ModelHandle, "tokenizer" | "source">, messages: ChatMessage[]): string {
  const text = renderChat(handle, [...messages, { role: "user", content: OPEN_TURN_SENTINEL }], {
    generationPrompt: false,
  });
  const cut = text.indexOf(OPEN_TURN_SENTINEL);
  if (cut < 0) {
    throw new UserError(`the chat template of ${handle.source} drops message content; cannot build the role swap`);
  }
  return text.slice(0, cut);
}

/** The normal format: the prompt as the user turn, then the generation prompt. */
export function renderNormal(handle: Pick<ModelHandle, "tokenizer" | "source">, prompt: string): string {
  return renderChat(handle, [{ role: "user", content: prompt }]);
}

/**
 * Ids of "\n\n" and the token that ends an assistant turn (from the template; the tokenizer's EOS
 * where the template writes none): what the notebook's steering suppresses so responses run their
 * full length.
 */
export function steeringSuppressedIds(handle: Pick<ModelHandle, "tokenizer" | "source">): number[] {
  const newline = handle.tokenizer.encode("\n\n", { add_special_tokens: false }).slice(0, 1);
  const end = chatFormat(handle).endOfTurn;
  const eos = handle.tokenizer.eos_token_id;
  return [...newline, ...(end.length ? end : typeof eos === "number" ? [eos] : [])];
}
