// Running top rows per (token type, feature): each thread owns one list of K (value, prompt) pairs,
// sorted by value descending with ties to the lower prompt, kept on the GPU across batches, and
// inserts the positive activations of its feature in the batch's rows of its type. The order is total
// (one row per prompt and type), so the lists do not depend on the order rows arrive in, and the host
// merges read-back lists with the same rule (lib/top_examples.ts). Empty slots hold 0 and prompt
// 0xffffffff, which any positive activation outranks (not -inf: WGSL lets compilers assume arithmetic
// sees no infinities).

struct Params {
  rows: u32,
  cols: u32,
  types: u32,
  k: u32,
}

@group(0) @binding(0) var<storage, read> f: array<f32>;                 // [rows, cols] activations
@group(0) @binding(1) var<storage, read> rowType: array<u32>;           // [rows] token type of each row
@group(0) @binding(2) var<storage, read> rowPrompt: array<u32>;         // [rows] global prompt of each row
@group(0) @binding(3) var<storage, read_write> topValue: array<f32>;    // [types, cols, k]
@group(0) @binding(4) var<storage, read_write> topPrompt: array<u32>;   // [types, cols, k]
@group(0) @binding(5) var<uniform> p: Params;

fn ranksBefore(a: f32, pa: u32, b: f32, pb: u32) -> bool {
  return a > b || (a == b && pa < pb);
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let c = id.x;
  let t = id.y;
  if (c >= p.cols || t >= p.types || p.k == 0u) { return; }
  let first = (t * p.cols + c) * p.k;
  let last = first + p.k - 1u;
  for (var r = 0u; r < p.rows; r++) {
    if (rowType[r] != t) { continue; }
    let v = f[r * p.cols + c];
    let prompt = rowPrompt[r];
    if (!(v > 0.0) || !ranksBefore(v, prompt, topValue[last], topPrompt[last])) { continue; }
    // Insertion: shift the entries it outranks down one slot (the last one falls off).
    var i = last;
    while (i > first && ranksBefore(v, prompt, topValue[i - 1u], topPrompt[i - 1u])) {
      topValue[i] = topValue[i - 1u];
      topPrompt[i] = topPrompt[i - 1u];
      i--;
    }
    topValue[i] = v;
    topPrompt[i] = prompt;
  }
}
