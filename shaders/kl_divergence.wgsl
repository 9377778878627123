// Per-token KL(P || Q) from two logits tensors of the same rows: KL = sum_v p_v (log p_v - log q_v),
// with log p = a - logsumexp(a) and log q = b - logsumexp(b). One workgroup per row.
//
// Two passes over the vocabulary. The first finds both log-sum-exps with an online max (each thread
// rescales its running sum when its max grows, so exp never overflows) and both argmaxes. The second
// sums p_v * ((a_v - lse_a) - (b_v - lse_b)) term by term: folding it into the first pass as
// E_p[a - b] - (lse_a - lse_b) would subtract two O(1) numbers to get a KL that is often 1e-4.
//
// out[row] = (kl, lse_a) and best[row] = (argmax a, argmax b), the indices in a u32 buffer of their own
// (bitcast into floats they would be subnormals or NaNs, which an implementation may flush or
// canonicalise). Argmax ties go to the lower index. A row
// of P (or Q) holding a NaN or infinity gets argmax NON_FINITE instead, and the host refuses it: the
// logits may come straight from a model's output buffer, never seen by the host. WGSL lets compilers
// assume arithmetic sees no NaN or infinity, so the check reads the exponent bits.

struct Params {
  rows: u32,
  vocab: u32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;  // [rows, vocab]: logits of P
@group(0) @binding(1) var<storage, read> b: array<f32>;  // [rows, vocab]: logits of Q
@group(0) @binding(2) var<storage, read_write> out: array<vec2<f32>>;   // [rows]: KL, lse_a
@group(0) @binding(3) var<storage, read_write> best: array<vec2<u32>>;  // [rows]: argmax a, argmax b
@group(0) @binding(4) var<uniform> p: Params;

const WG: u32 = 256u;
const NONE: u32 = 0xffffffffu;
const NON_FINITE: u32 = 0xfffffffeu;

var<workgroup> max_a: array<f32, 256>;
var<workgroup> sum_a: array<f32, 256>;
var<workgroup> max_b: array<f32, 256>;
var<workgroup> sum_b: array<f32, 256>;
var<workgroup> arg_a: array<u32, 256>;
var<workgroup> arg_b: array<u32, 256>;
var<workgroup> nonfinite: atomic<u32>;  // bit 0: P's row, bit 1: Q's row

fn is_finite(v: f32) -> bool {
  return (bitcast<u32>(v) & 0x7f800000u) != 0x7f800000u;
}

// Online log-sum-exp merge of (m1, s1) and (m2, s2): s = s1 e^(m1 - m) + s2 e^(m2 - m), m = max.
// A side that has seen nothing has s = 0 and contributes nothing.
fn merged_sum(m1: f32, s1: f32, m2: f32, s2: f32, m: f32) -> f32 {
  let t1 = select(s1 * exp(m1 - m), 0.0, s1 == 0.0);
  let t2 = select(s2 * exp(m2 - m), 0.0, s2 == 0.0);
  return t1 + t2;
}

// Larger value wins; equal values go to the lower index.
fn better(v1: f32, i1: u32, v2: f32, i2: u32) -> bool {
  return v2 > v1 || (v2 == v1 && i2 < i1);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = group.x;
  // Uniform per workgroup (every thread of a group has the same row), so the barriers below are safe.
  if (row >= p.rows) { return; }
  let base = row * p.vocab;
  // Non-finite rows are flagged and refused, so the lowest f32 is a safe "nothing seen yet".
  let lowest = -3.4028235e38;

  var ma = lowest;
  var sa = 0.0;
  var mb = lowest;
  var sb = 0.0;
  var ia = NONE;
  var ib = NONE;
  for (var v = lid; v < p.vocab; v += WG) {
    let x = a[base + v];
    let y = b[base + v];
    if (!is_finite(x)) { atomicOr(&nonfinite, 1u); }
    if (!is_finite(y)) { atomicOr(&nonfinite, 2u); }
    // Threads visit increasing v, so a strictly greater value keeps the lowest index among ties.
    if (x > ma || ia == NONE) { sa = sa * exp(ma - x) + 1.0; ma = x; ia = v; } else { sa += exp(x - ma); }
    if (y > mb || ib == NONE) { sb = sb * exp(mb - y) + 1.0; mb = y; ib = v; } else { sb += exp(y - mb); }
  }
  max_a[lid] = ma;
  sum_a[lid] = sa;
  max_b[lid] = mb;
  sum_b[lid] = sb;
  arg_a[lid] = ia;
  arg_b[lid] = ib;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    if (lid < stride) {
      let o = lid + stride;
      let m1 = max(max_a[lid], max_a[o]);
      sum_a[lid] = merged_sum(max_a[lid], sum_a[lid], max_a[o], sum_a[o], m1);
      let m2 = max(max_b[lid], max_b[o]);
      sum_b[lid] = merged_sum(max_b[lid], sum_b[lid], max_b[o], sum_b[o], m2);
      // Each thread's max is the value at its argmax: compare before overwriting the maxima.
      if (arg_a[o] != NONE && (arg_a[lid] == NONE || better(max_a[lid], arg_a[lid], max_a[o], arg_a[o]))) {
        arg_a[lid] = arg_a[o];
      }
      if (arg_b[o] != NONE && (arg_b[lid] == NONE || better(max_b[lid], arg_b[lid], max_b[o], arg_b[o]))) {
        arg_b[lid] = arg_b[o];
      }
      max_a[lid] = m1;
      max_b[lid] = m2;
    }
    workgroupBarrier();
  }
  let lse_a = max_a[0] + log(sum_a[0]);
  let lse_b = max_b[0] + log(sum_b[0]);
  let flags = atomicLoad(&nonfinite);
  let best_a = select(arg_a[0], NON_FINITE, (flags & 1u) != 0u);
  let best_b = select(arg_b[0], NON_FINITE, (flags & 2u) != 0u);
  workgroupBarrier();

  var kl = 0.0;
  for (var v = lid; v < p.vocab; v += WG) {
    let la = a[base + v] - lse_a;
    let lb = b[base + v] - lse_b;
    let pv = exp(la);
    // p = 0 contributes nothing, even where q = 0 too (la - lb would be NaN there).
    if (pv > 0.0) { kl += pv * (la - lb); }
  }
  sum_a[lid] = kl;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    if (lid < stride) { sum_a[lid] += sum_a[lid + stride]; }
    workgroupBarrier();
  }
  if (lid == 0u) {
    out[row] = vec2<f32>(sum_a[0], lse_a);
    best[row] = vec2<u32>(best_a, best_b);
  }
}
