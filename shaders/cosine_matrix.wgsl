// Cosine similarity matrix of two row sets: cos[i][j] = a_i · b_j / (|a_i| |b_j|), one thread per
// pair. Rows of norm zero give 0 (as F.normalize's eps makes them).

struct Params {
  n: u32,
  m: u32,
  d: u32,
  _pad: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;  // [n, d]
@group(0) @binding(1) var<storage, read> b: array<f32>;  // [m, d]
@group(0) @binding(2) var<storage, read_write> out: array<f32>;  // [n, m]
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let i = id.y;
  let j = id.x;
  if (i >= p.n || j >= p.m) { return; }
  var dot = 0.0;
  var na = 0.0;
  var nb = 0.0;
  for (var k = 0u; k < p.d; k++) {
    let x = a[i * p.d + k];
    let y = b[j * p.d + k];
    dot += x * y;
    na += x * x;
    nb += y * y;
  }
  out[i * p.m + j] = dot / max(sqrt(na) * sqrt(nb), 1e-12);
}
