import { assertEquals, assertMatch } from "../assert.ts";
import { modelDisplayName, modelsLine } from "../../lib/report/plotly.ts";

Deno.test("pages name a model by its hub id or folder name, the full source only in a tooltip", () => {
  assertEquals(modelDisplayName("/home/me/.cache/fixtures/tiny-llama-base"), "tiny-llama-base");
  assertEquals(modelDisplayName("./checkpoints/gemma-2-2b-it/"), "gemma-2-2b-it");
  assertEquals(modelDisplayName("meta-llama/Llama-3.1-8B-Instruct"), "meta-llama/Llama-3.1-8B-Instruct");
  const snapshot = "/home/me/.cache/huggingface/hub/models--google--gemma-2-2b-it/snapshots/299a8560bedf22ed1c72/";
  assertEquals(modelDisplayName(snapshot), "google/gemma-2-2b-it");
  const line = modelsLine({ base: "/home/me/x/base<1>", chat: "org/chat" });
  assertMatch(line, /base <span title="\/home\/me\/x\/base&lt;1&gt;"[^>]*>base&lt;1&gt;<\/span>/);
  assertMatch(line, /chat <span title="org\/chat"[^>]*>org\/chat<\/span>/);
});
