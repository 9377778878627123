import { assert, assertEquals, assertMatch } from "../assert.ts";
import { join } from "node:path";
import { ExplanationSource, fetchExplanation, NeuronpediaUnavailable } from "../../lib/features/neuronpedia_api.ts";
import { parseExplanations } from "../../lib/features/neuronpedia.ts";
import { tempDir } from "../temp.ts";

/**
 * An answer as Neuronpedia's `GET /api/feature/{modelId}/{layer}/{index}` sends it, trimmed: the route
 * (hijohnnylin/neuronpedia apps/webapp/app/api/feature/[modelId]/[layer]/[index]/route.ts) returns
 * `getNeuronOptimized` of apps/webapp/lib/db/neuron.ts, i.e. the Neuron row (fields of
 * apps/webapp/prisma/schema.prisma `model Neuron`, `index` a string) with `model`, `lists`, `creator`,
 * `source`, `sourceSet`, `comments`, `activations` (ordered by maxValue) and `explanations` selected as
 * `{ id, description, explanationModelName, typeName, scores, triggeredByUser }`, best score first.
 */
const ANSWER = {
  modelId: "gemma-2-2b",
  layer: "20-gemmascope-res-16k",
  index: "1234",
  sourceSetName: "gemmascope-res-16k",
  creatorId: "clsxqq2xd0000vvp2k5itlhqj",
  createdAt: "2024-07-31T04:23:19.000Z",
  maxActApprox: 51.2,
  hasVector: false,
  vector: [],
  vectorLabel: null,
  vectorDefaultSteerStrength: 10,
  hookName: null,
  topkCosSimIndices: [],
  topkCosSimValues: [],
  neg_str: ["ostream", "uderea"],
  neg_values: [-0.71, -0.69],
  pos_str: [" assistant", " Assistant"],
  pos_values: [1.31, 1.12],
  frac_nonzero: 0.00123,
  freq_hist_data_bar_heights: [12, 3],
  freq_hist_data_bar_values: [0.5, 1.5],
  correlated_features_indices: [],
  correlated_features_l1: [],
  correlated_features_pearson: [],
  model: { id: "gemma-2-2b", displayName: "Gemma 2 2B" },
  lists: [],
  creator: { name: "neuronpedia" },
  source: { id: "20-gemmascope-res-16k", modelId: "gemma-2-2b" },
  sourceSet: { name: "gemmascope-res-16k" },
  comments: [],
  activations: [{
    id: "clzaaaa",
    tokens: ["<bos>", "The", " assistant"],
    values: [0, 0.4, 51.2],
    maxValue: 51.2,
    maxValueTokenIndex: 2,
  }],
  explanations: [
    {
      id: "clzexp1",
      description: " the assistant role in chat transcripts",
      explanationModelName: "gpt-4o-mini",
      typeName: "oai_token-act-pair",
      scores: [],
      triggeredByUser: null,
    },
    { id: "clzexp2", description: "mentions of helpers", explanationModelName: null, typeName: null, scores: [] },
    { id: "clzexp3", description: "", explanationModelName: "gpt-4o-mini", typeName: "oai_token-act-pair" },
  ],
};

/** A local stand-in for Neuronpedia: `answer` decides each response; every request path is recorded. */
function server(answer: (path: string) => Response | Promise<Response>) {
  const requests: string[] = [];
  const controller = new AbortController();
  const instance = Deno.serve(
    { port: 0, hostname: "127.0.0.1", signal: controller.signal, onListen: () => {} },
    (r) => {
      const path = new URL(r.url).pathname;
      requests.push(path);
      return answer(path);
    },
  );
  return {
    url: `http://127.0.0.1:${instance.addr.port}`,
    requests,
    close: async () => {
      controller.abort();
      await instance.finished;
    },
  };
}

Deno.test("explanations are read from Neuronpedia's feature answer, best first, and cached: a second ask needs no server", async () => {
  const cacheDir = await tempDir("neuronpedia-");
  const np = server((path) =>
    path === "/api/feature/gemma-2-2b/20-gemmascope-res-16k/1234"
      ? Response.json(ANSWER)
      : Response.json({ error: "The model, source, or feature you specified is not available." }, { status: 404 })
  );
  const options = { baseUrl: np.url, cacheDir };
  const expected = [
    {
      description: "the assistant role in chat transcripts",
      explanationModelName: "gpt-4o-mini",
      typeName: "oai_token-act-pair",
    },
    { description: "mentions of helpers" },
  ];
  assertEquals(await fetchExplanation("gemma-2-2b", "20-gemmascope-res-16k", 1234, options), expected);
  // A feature Neuronpedia does not have is an answer too: none, cached.
  assertEquals(await fetchExplanation("gemma-2-2b", "20-gemmascope-res-16k", 99, options), []);
  assertEquals(np.requests.length, 2);
  await np.close();
  assertEquals(await fetchExplanation("gemma-2-2b", "20-gemmascope-res-16k", 1234, options), expected);
  assertEquals(await fetchExplanation("gemma-2-2b", "20-gemmascope-res-16k", 99, options), []);
  // Cached per server: the same feature asked of another server is not answered from this one's cache.
  assertEquals(
    await fetchExplanation("gemma-2-2b", "20-gemmascope-res-16k", 1234, {
      ...options,
      baseUrl: "http://127.0.0.1:9",
      cacheOnly: true,
    }),
    undefined,
  );
  const files = await Array.fromAsync(
    Deno.readDir(join(cacheDir, encodeURIComponent(new URL(np.url).host), "gemma-2-2b", "20-gemmascope-res-16k")),
  );
  assertEquals(files.map((f) => f.name).sort(), ["1234.json", "99.json"]);
  await Deno.remove(cacheDir, { recursive: true });
});

Deno.test("an unreachable, failing or silent Neuronpedia is given up after one attempt per run, without waiting out every feature", async () => {
  const cacheDir = await tempDir("neuronpedia-");
  // Refused connections: a server that is gone.
  const gone = server(() => new Response("unused"));
  await gone.close();
  const offline = new ExplanationSource("gemma-2-2b/20-gemmascope-res-16k", { baseUrl: gone.url, cacheDir });
  assertEquals(await offline.get(1), undefined);
  assertMatch(offline.unavailable ?? "", /cannot be reached/);
  assertEquals(await offline.get(2), undefined);

  // An error answer: the first feature is asked, the second is not.
  const failing = server(() => new Response("busy", { status: 503, statusText: "Service Unavailable" }));
  const source = new ExplanationSource("gemma-2-2b/20-gemmascope-res-16k", { baseUrl: failing.url, cacheDir });
  assertEquals([await source.get(1), await source.get(2)], [undefined, undefined]);
  assertEquals(failing.requests.length, 1);
  assertMatch(source.unavailable ?? "", /answered 503 Service Unavailable/);
  await failing.close();

  // A server that never answers: one short timeout, then nothing more is asked.
  let release = () => {};
  const hung = new Promise<Response>((resolve) => release = () => resolve(new Response("late")));
  const silent = server(() => hung);
  const slow = new ExplanationSource("gemma-2-2b/20-gemmascope-res-16k", {
    baseUrl: silent.url,
    cacheDir,
    timeoutMs: 200,
  });
  const start = performance.now();
  assertEquals([await slow.get(1), await slow.get(2), await slow.get(3)], [undefined, undefined, undefined]);
  assert(performance.now() - start < 3000, `gave up in ${performance.now() - start} ms`);
  assertEquals(silent.requests.length, 1);
  assertMatch(slow.unavailable ?? "", /did not answer within 0\.2 s/);
  release();
  await silent.close();

  // Not JSON: unavailable too, and nothing cached.
  const garbled = server(() => new Response("<html>maintenance</html>", { headers: { "content-type": "text/html" } }));
  await fetchExplanation("m", "s", 5, { baseUrl: garbled.url, cacheDir }).then(
    () => assert(false, "expected a failure"),
    (error) => assert(error instanceof NeuronpediaUnavailable && /not JSON/.test(error.message), String(error)),
  );
  await garbled.close();
  await Deno.remove(cacheDir, { recursive: true });
});

Deno.test("parseExplanations takes answers without explanations, and entries without text, as none", () => {
  assertEquals(parseExplanations(null), []);
  assertEquals(parseExplanations({ error: "not found" }), []);
  assertEquals(parseExplanations({ explanations: "no" }), []);
  assertEquals(
    parseExplanations({ explanations: [null, { description: 3 }, { description: "  " }, { description: "x" }] }),
    [
      { description: "x" },
    ],
  );
});
