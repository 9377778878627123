/**
 * Chat formatting with the model's own template, and what the toolkit needs to know per model family.
 *
 * @module
 */

import type { Family } from "./fixtures/spec.ts";
import { UserError } from "./errors.ts";
import type { ModelHandle } from "./runtime.ts";

export type { Family };

/** One chat message, as Hugging Face chat templates take it. */
export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

/** The model family from config.json's `model_type` (Llama 3 and Gemma 2 are known). */
export function familyOf(config: { model_type?: string | null }): Family {
  switch (config.model_type) {
    case "llama":
      return "llama";
    case "gemma2":
      return "gemma2";
    default:
      throw new UserError(
        `unsupported model_type "${config.model_type}": this toolkit knows Llama 3 (llama) and Gemma 2 (gemma2) chat formats`,
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
