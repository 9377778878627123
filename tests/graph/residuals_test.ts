import { assert, assertEquals, assertMatch } from "../assert.ts";
import { join } from "node:path";
import { UserError } from "../../lib/core/errors.ts";
import { ensureFixtureModel } from "../../lib/fixtures/build.ts";
import { GraphBuilder } from "../../lib/graph/builder.ts";
import { readModel } from "../../lib/graph/onnx_file.ts";
import { locateResiduals } from "../../lib/graph/residuals.ts";

async function fixtureGraph(name: string) {
  return (await readModel(join(await ensureFixtureModel(name), "onnx", "model.onnx"))).graph;
}

Deno.test("Optimum naming: resid_post of layer i is /model/layers.i/Add_1, embeddings feed layer 0", async () => {
  const llama = locateResiduals(await fixtureGraph("tiny-llama-chat-optimum"));
  assertEquals(llama.scheme, "optimum");
  assertEquals(llama.layers, [0, 1, 2, 3].map((i) => `/model/layers.${i}/Add_1_output_0`));
  assertEquals(llama.embeddings, "/model/embed_tokens/Gather_output_0");
  // Gemma scales the embeddings by sqrt(d_model) before layer 0: hidden_states[0] is the scaled tensor.
  const gemma = locateResiduals(await fixtureGraph("tiny-gemma2-chat-optimum"));
  assertEquals(gemma.embeddings, "/model/Mul_output_0");
});

/**
 * A skeleton of onnxruntime-genai's builder layout (src/python/py/models/builders/base.py,
 * make_layernorm / make_model): fused SkipSimplifiedLayerNormalization residuals with inputs
 * (root_input, skip_input, weight), output 3 listed except on the final norm, which sits at layer N.
 */
function genaiSkeleton(layers: number, listOutput3: boolean) {
  const b = new GraphBuilder();
  const nodes = b.nodes;
  nodes.push({
    name: "/model/embed_tokens/Gather",
    opType: "Gather",
    input: ["w", "input_ids"],
    output: ["/model/embed_tokens/Gather/output_0"],
  });
  const skip = (layer: number, location: string, withSum: boolean) => {
    const p = `/model/layers.${layer}/${location}_layernorm`;
    nodes.push({
      name: `${p}/SkipLayerNorm`,
      opType: "SkipSimplifiedLayerNormalization",
      input: ["a", "b", "g"],
      output: [`${p}/output_0`, ...(withSum ? ["", "", `${p}/output_3`] : [])],
    });
  };
  for (let l = 0; l < layers; l++) {
    if (l === 0) {
      nodes.push({
        name: "/model/layers.0/input_layernorm/LayerNorm",
        opType: "SimplifiedLayerNormalization",
        input: ["/model/embed_tokens/Gather/output_0", "g"],
        output: ["/model/layers.0/input_layernorm/output_0"],
      });
    } else skip(l, "input", listOutput3);
    skip(l, "post_attention", true);
  }
  skip(layers, "final_norm", false);
  return b.build("genai").graph!;
}

Deno.test("onnxruntime-genai naming: resid_post is output 3 of the next fused Skip norm (added when unlisted)", () => {
  for (const listed of [true, false]) {
    const map = locateResiduals(genaiSkeleton(3, listed));
    assertEquals(map.scheme, "genai");
    assertEquals(map.embeddings, "/model/embed_tokens/Gather/output_0");
    assertEquals(
      map.layers.slice(0, 2),
      ["/model/layers.1/input_layernorm/output_3", "/model/layers.2/input_layernorm/output_3"].map((t) =>
        listed ? t : t.replace("output_3", "SkipLayerNorm/output_3")
      ),
    );
    assertEquals(map.layers[2], "/model/layers.3/final_norm_layernorm/SkipLayerNorm/output_3");
    assertEquals(map.missingOutputs.length, listed ? 1 : 3);
    assertEquals(map.fusedNorms?.[2], "/model/layers.3/final_norm_layernorm/SkipLayerNorm");
  }
});

Deno.test("a builder-style fixture graph is located as genai, the final norm's sum output added", async () => {
  const map = locateResiduals(await fixtureGraph("tiny-llama-chat-genai"));
  assertEquals(map.scheme, "genai");
  assertEquals(map.embeddings, "/model/embed_tokens/Gather/output_0");
  assertEquals(map.layers[0], "/model/layers.1/input_layernorm/output_3");
  assertEquals(map.layers[3], "/model/layers.4/final_norm_layernorm/SkipLayerNorm/output_3");
  assertEquals(map.missingOutputs, [{
    node: "/model/layers.4/final_norm_layernorm/SkipLayerNorm",
    index: 3,
    tensor: "/model/layers.4/final_norm_layernorm/SkipLayerNorm/output_3",
  }]);
});

Deno.test("an explicit pattern or list of names overrides detection", async () => {
  const graph = await fixtureGraph("tiny-llama-chat-optimum");
  const byPattern = locateResiduals(graph, { pattern: "/model/layers.{layer}/Add_output_0", layers: 4 });
  assertEquals(byPattern.layers[2], "/model/layers.2/Add_output_0");
  assertEquals(locateResiduals(graph, { names: ["/model/layers.0/Add_output_0"] }).layers.length, 1);
});

Deno.test("a graph no pattern matches gives one clear error line listing what was found", async () => {
  const graph = await fixtureGraph("tiny-llama-chat-optimum");
  for (const node of graph.node) node.name = node.name!.replace("/model/layers.", "/transformer/h.");
  // No Gather of input_ids either, so the residual chain cannot be followed from the embedding.
  for (const node of graph.node) node.input = node.input!.map((t) => (t === "input_ids" ? "tokens" : t));
  for (const run of [() => locateResiduals(graph), () => locateResiduals(graph, { names: ["nope"] })]) {
    try {
      run();
      throw new Error("expected a failure");
    } catch (error) {
      assert(error instanceof UserError, String(error));
      assert(!error.message.includes("\n"), "one line");
      assertMatch(error.message, /found \d+ nodes, layer-like scopes: \/transformer\/h\.\{i\}/);
    }
  }
  try {
    locateResiduals(graph);
  } catch (error) {
    assertMatch((error as Error).message, /could not find the residual stream.*--residual-pattern/);
  }
});

Deno.test("torch dynamo naming (node_add_8 producing add_8): the residual chain is followed from the embedding", async () => {
  const dynamo = locateResiduals(await fixtureGraph("tiny-llama-chat-dynamo"));
  assertEquals(dynamo.scheme, "chain");
  assert(dynamo.layers.every((t) => /^add_\d+$/.test(t)), `${dynamo.layers}`);
  assertEquals(dynamo.embeddings, "gather");
  // The same tensors as the Optimum-named graph: the dynamo fixture only renames.
  const optimum = locateResiduals(await fixtureGraph("tiny-llama-chat-optimum"));
  const producers = async (name: string, tensors: string[]) => {
    const nodes = (await fixtureGraph(name)).node;
    return tensors.map((t) => nodes.findIndex((n) => n.output?.includes(t)));
  };
  assertEquals(
    await producers("tiny-llama-chat-dynamo", dynamo.layers),
    await producers("tiny-llama-chat-optimum", optimum.layers),
  );
  // The chain rule finds the Optimum graph's residuals too (Gemma's scaled embedding included).
  for (const name of ["tiny-llama-chat-optimum", "tiny-gemma2-chat-optimum"]) {
    const graph = await fixtureGraph(name);
    for (const node of graph.node) node.name = `renamed_${node.name}`;
    const located = locateResiduals(graph);
    const expected = locateResiduals(await fixtureGraph(name));
    assertEquals([located.scheme, located.embeddings, located.layers], ["chain", expected.embeddings, expected.layers]);
  }
});
