/**
 * Rows of SAELens's `sae_lens/pretrained_saes.yaml`, copied verbatim (decoderesearch/SAELens, commit
 * 468b9cc89551d3677b5f1fc0ee52c06cf8cf36df of 2026-02-27, the one lib/sae/releases.json was generated
 * from): each release's header and one of its SAEs, with the yaml's line numbers. The release test reads
 * them with its own few regular expressions, not with the generator's yaml parser.
 *
 * @module
 */

/** Lines 29860-29868 and 29905-29907. */
export const GEMMA_SCOPE_CANONICAL = `gemma-scope-2b-pt-res-canonical:
  conversion_func: gemma_2
  links:
    dashboards: https://www.neuronpedia.org/gemma-2-2b/gemmascope-res-16k
    model: https://huggingface.co/google/gemma-2-2b
    publication: https://huggingface.co/google/gemma-scope
  model: gemma-2-2b
  repo_id: google/gemma-scope-2b-pt-res
  saes:
  - id: layer_12/width_16k/canonical
    neuronpedia: gemma-2-2b/12-gemmascope-res-16k
    path: layer_12/width_16k/average_l0_82
`;

/** Lines 37312-37316 and 37392-37396. */
export const LLAMA_SCOPE_8X = `llama_scope_lxr_8x:
  conversion_func: llama_scope
  model: meta-llama/Llama-3.1-8B
  repo_id: fnlp/Llama3_1-8B-Base-LXR-8x
  saes:
  - id: l15r_8x
    l0: 50.0
    neuronpedia: llama3.1-8b/15-llamascope-res-32k
    norm_scaling_factor: 5.91907514450867
    path: Llama3_1-8B-Base-L15R-8x
`;

/** Lines 1456-1460 and 1464-1467. */
export const GEMMA_SCOPE_2 = `gemma-scope-2-4b-pt-res:
  conversion_func: gemma_3
  model: google/gemma-3-4b-pt
  repo_id: google/gemma-scope-2-4b-pt
  saes:
  - id: layer_17_width_16k_l0_medium
    path: resid_post/layer_17_width_16k_l0_medium
    l0: 60
    neuronpedia: gemma-3-4b/17-gemmascope-2-res-16k
`;

/** Lines 41698-41702 and 41712-41714. */
export const QWEN_ANDYRDT = `qwen2.5-7b-instruct-andyrdt:
  conversion_func: dictionary_learning_1
  model: Qwen/Qwen2.5-7B-Instruct
  repo_id: andyrdt/saes-qwen2.5-7b-instruct
  saes:
  - id: resid_post_layer_15_trainer_1
    path: resid_post_layer_15/trainer_1
    neuronpedia: qwen2.5-7b-it/15-resid-post-aa
`;
