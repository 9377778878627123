/// <reference lib="dom" />
/**
 * The compute engine behind the page (web/engine_api.ts): not wired yet.
 *
 * @module
 */

import { UserError } from "../lib/core/errors.ts";
import type { Engine } from "./engine_api.ts";

/** The page's engine. */
export const engine: Engine = {
  runDiff: () => Promise.reject(new UserError("not wired yet")),
  steer: () => Promise.reject(new UserError("not wired yet")),
};
