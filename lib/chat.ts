/**
 * Chat formatting with the model's own template, and what the toolkit needs to know per model family.
 *
 * @module
 */

import { UserError } from "./errors.ts";
import type { ModelHandle } from "./runtime.ts";

/** Architecture families the toolkit knows (chat format, header tokens). */
export type Family = "llama" | "gemma2";

/** One chat message, as Hugging Face chat templates take it. */
export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

/**
 * The chat family from config.json's `model_type` (Llama 3 and Gemma 2 are known). Gemma 3 writes
 * Gemma 2's turns (`<start_of_turn>model\n` ... `<end_of_turn>`), so it reads at the same headers.
 */
export function familyOf(config: { model_type?: string | null }): Family {
  switch (config.model_type) {
    case "llama":
      return "llama";
    case "gemma2":
    case "gemma3_text":
    case "gemma3":
      return "gemma2";
    default:
      throw new UserError(
        `unsupported model_type "${config.model_type}": this toolkit knows Llama 3 (llama) and Gemma 2 and 3 (gemma2, gemma3_text) chat formats`,
      );
  }
}

/** Renders `messages` with the tokenizer's chat template; `generationPrompt` appends the assistant header. */
export function renderChat(
  handle: Pick<ModelHandle, "tokenizer" | "source">,
  messages: ChatMessage[],
  options: { generationPrompt?: boolean } = {},
): string {
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

/**
 * Position = first header match + header length + offset (the upstream library's rule). Llama 3:
 * `asst` is the "assistant" token, `endheader` `<|end_header_id|>`, `newline` the "\n\n" after it.
 */
export const TOKEN_TYPE_OFFSETS: Record<TokenType, number> = { asst: -2, endheader: -1, newline: 0 };

/**
 * The assistant header per family. Gemma's header already ends in "\n", so there `endheader` is that
 * "\n" and `newline` (the token after the header) clamps to it at the end of a generation prompt.
 */
export const ASSISTANT_HEADER: Record<Family, string> = {
  llama: "<|start_header_id|>assistant<|end_header_id|>",
  gemma2: "<start_of_turn>model\n",
};

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

/** The user turn's header per family (what opens the turn after the prompt in the role swap). */
export const USER_HEADER: Record<Family, string> = {
  llama: "<|start_header_id|>user<|end_header_id|>",
  gemma2: "<start_of_turn>user\n",
};

/** The assistant header's token ids for a loaded model. */
export function assistantHeaderIds(handle: Pick<ModelHandle, "tokenizer" | "config">): number[] {
  return headerIds(handle, "assistant");
}

/** The token ids of a role's turn header for a loaded model. */
export function headerIds(handle: Pick<ModelHandle, "tokenizer" | "config">, role: "assistant" | "user"): number[] {
  const family = familyOf(handle.config);
  const text = role === "assistant" ? ASSISTANT_HEADER[family] : USER_HEADER[family];
  return handle.tokenizer.encode(text, { add_special_tokens: false });
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
  header: readonly number[],
  types: readonly TokenType[],
  occurrence: "first" | "last" = "first",
): ReadPositions {
  const start = findSubsequence(ids, header, occurrence);
  if (start < 0) return { positions: types.map(() => ids.length - 1), headerFound: false };
  const positions = types.map((type) =>
    Math.min(ids.length - 1, Math.max(0, start + header.length + TOKEN_TYPE_OFFSETS[type]))
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
  /** Tokenize the prompt as is, without the chat template. */
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
  const header = headerIds(handle, rule.role);
  const types = options.types ?? [];
  return prompts.map((prompt) => {
    const text = options.raw ? prompt : options.render ? options.render(prompt) : renderNormal(handle, prompt);
    const all = options.raw
      ? handle.tokenizer.encode(text, { add_special_tokens: true })
      : tokenizeRendered(handle, text);
    const { ids, truncated } = options.maxLength
      ? truncateIds(all, options.maxLength, options.raw ? 0 : header.length + 1)
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
  const text = renderChat(handle, [
    { role: "user", content: "Hello." },
    { role: "assistant", content: prompt },
    { role: "user", content: OPEN_TURN_SENTINEL },
  ], { generationPrompt: false });
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

/** The token that ends a turn, per family (steering suppresses it so responses run their full length). */
export const END_OF_TURN: Record<Family, string> = { llama: "<|eot_id|>", gemma2: "<end_of_turn>" };

/** Ids of "\n\n" and the end-of-turn token: what the notebook's steering suppresses. */
export function steeringSuppressedIds(handle: Pick<ModelHandle, "tokenizer" | "config">): number[] {
  const encode = (text: string) => handle.tokenizer.encode(text, { add_special_tokens: false });
  return [...encode("\n\n").slice(0, 1), ...encode(END_OF_TURN[familyOf(handle.config)])];
}
