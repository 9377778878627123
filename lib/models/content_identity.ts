/**
 * A model's content identity: the digest of every file that determines what it computes and how its
 * text is tokenized (graph, each external data file the graph names, config, tokenizer). The CLI
 * computes it over a model directory (lib/models/identity.ts), a page over the graph it built from the
 * files it was given; the same model gives the same identity in both, so a run's statistics carry one
 * fingerprint wherever they were collected.
 *
 * @module
 */

import { sha256Hex } from "../core/sha256.ts";

/** The files beside the graph that determine what a model computes and how its text is tokenized. */
export const MODEL_SIDE_FILES = [
  "config.json",
  "generation_config.json",
  "tokenizer.json",
  "tokenizer_config.json",
  "chat_template.jinja",
];

/** One file of a model: its path in the model's folder (`/onnx/model.onnx`, `/config.json`), size and SHA-256. */
export interface HashedFile {
  path: string;
  size: number;
  digest: string;
}

/**
 * The content identity of a model made of `files`, in order: the graph, the external data files in the
 * order the graph names them, then the side files present, in {@linkcode MODEL_SIDE_FILES}' order.
 */
export function contentIdentity(files: readonly HashedFile[]): Promise<string> {
  return sha256Hex([JSON.stringify(files.map((f) => [f.path, f.size, f.digest]))]);
}
