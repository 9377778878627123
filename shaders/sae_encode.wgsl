// SAE encoder: f = act(x · W + b) for a batch of input rows against one column chunk of W_enc.
//
// Shaped for the SAE case: few rows (a diff batch is 3 x batch size, e.g. 96; a capture 1-32), a long
// inner dimension and many columns. A workgroup of 64 threads owns ROWS rows (at most 16) and 1024
// columns; each thread owns 16 adjacent columns of those rows and reads their weights straight from W,
// 64 bytes per k (f32) or 32 (f16), which neighbouring threads continue, so a workgroup reads W rows
// contiguously and each weight once per row tile. The x values of a KT-deep slab, which every thread
// needs, are staged once per workgroup in workgroup memory with coalesced vec4 loads. Row tiles run
// fastest (workgroup x), so the row tiles of one column block read the same W columns close together.
//
// The wrapper pads inner to a multiple of KT (zero x columns and W rows) and W's rows to a multiple of
// 16 columns (zero weights), so no load is out of range: rows past the batch read its last row, and
// threads past the last 16 columns read the last ones; neither is written, nor are padded columns.
// Results are exact at any shape.
//
// W arrives as 16-byte words whatever its dtype: HALF packs eight f16s per word (a 4096 x 131072
// encoder stays 1 GiB) and widens them with unpack2x16float, which is core WGSL, so no adapter needs
// shader-f16; otherwise a word is four f32s' bits. Accumulation is always f32.
//
// The accumulators are sixteen separate variables, not an array: an array that the epilogue indexes
// with a loop variable is kept in memory by some compilers (on lavapipe it halved the throughput).

struct Params {
  rows: u32,        // input vectors in the batch
  inner: u32,       // d_in, padded to a multiple of KT
  cols: u32,        // features in this chunk (unpadded)
  activation: u32,  // 0 = none (pre-activations), 1 = ReLU, 2 = JumpReLU, 3 = gated
  outStride: u32,   // floats per row of `out`: cols, or d_sae when chunks write into one full-width buffer
  outOffset: u32,   // column of `out` where this chunk starts
  rowWords: u32,    // 16-byte words per row of W: cols padded to a multiple of 16, times 4 or 2 bytes, / 16
}

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;    // [rows, inner / 4]
@group(0) @binding(1) var<storage, read> w: array<vec4<u32>>;    // [inner, rowWords]
@group(0) @binding(2) var<storage, read> bias: array<f32>;       // [cols]
@group(0) @binding(3) var<storage, read> threshold: array<f32>;  // [cols]
@group(0) @binding(4) var<storage, read_write> out: array<f32>;  // [rows, outStride]
@group(0) @binding(5) var<uniform> p: Params;
@group(0) @binding(6) var<storage, read> magnitude: array<vec2<f32>>;  // [cols] (scale, bias), gated only

override ROWS: u32 = 16u;                    // rows per workgroup, 1 to 16
override HALF: bool = false;                 // W holds f16s
override WORDS: u32 = select(4u, 2u, HALF);  // 16-byte words of W per thread and k

const THREADS: u32 = 64u;
const KT: u32 = 32u;  // inner depth of one staged x slab

var<workgroup> xs: array<vec4<f32>, 128>;  // [ROWS][KT / 4]

// The 16 weights of this thread's columns at inner index k: column 4q + j is [q][j].
fn weights(k: u32, rowWords: u32, word0: u32) -> mat4x4<f32> {
  let at = k * rowWords + word0;
  if (HALF) {
    let a = w[at];
    let b = w[at + 1u];
    return mat4x4<f32>(
      vec4<f32>(unpack2x16float(a.x), unpack2x16float(a.y)),
      vec4<f32>(unpack2x16float(a.z), unpack2x16float(a.w)),
      vec4<f32>(unpack2x16float(b.x), unpack2x16float(b.y)),
      vec4<f32>(unpack2x16float(b.z), unpack2x16float(b.w)),
    );
  }
  return mat4x4<f32>(
    bitcast<vec4<f32>>(w[at]),
    bitcast<vec4<f32>>(w[at + 1u]),
    bitcast<vec4<f32>>(w[at + 2u]),
    bitcast<vec4<f32>>(w[at + 3u]),
  );
}

// Row i's contribution over the four staged k's of slot s (weights w0..w3 at those k's).
fn rowStep(i: u32, s: u32, w0: mat4x4<f32>, w1: mat4x4<f32>, w2: mat4x4<f32>, w3: mat4x4<f32>) -> mat4x4<f32> {
  let a = xs[i * (KT / 4u) + s];
  return a.x * w0 + a.y * w1 + a.z * w2 + a.w * w3;
}

// Bias, activation and the write of row i's 16 columns starting at c0.
fn store(i: u32, c0: u32, acc: mat4x4<f32>) {
  let r = workgroupRow0 + i;
  if (i >= ROWS || r >= p.rows || !ownsColumns) { return; }
  for (var j = 0u; j < 16u; j++) {
    let c = c0 + j;
    if (c >= p.cols) { return; }
    let xw = acc[j / 4u][j % 4u];
    let pre = xw + bias[c];
    var f = pre;
    if (p.activation == 1u) { f = max(pre, 0.0); }
    if (p.activation == 2u) { f = select(0.0, pre, pre > threshold[c]); }
    // Gated (SAELens GatedSAE): bias is b_gate and pre's sign opens the gate; the magnitude path
    // rescales the same x W per feature, exp(r_mag) · xW + b_mag, and ReLUs it.
    if (p.activation == 3u) {
      let m = magnitude[c];
      f = select(0.0, max(xw * m.x + m.y, 0.0), pre > 0.0);
    }
    out[r * p.outStride + p.outOffset + c] = f;
  }
}

var<private> workgroupRow0: u32;
var<private> ownsColumns: bool;

@compute @workgroup_size(THREADS)
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  workgroupRow0 = group.x * ROWS;
  let rowWords = p.rowWords;
  let groups = rowWords / WORDS;  // groups of 16 columns
  ownsColumns = group.y * THREADS + tid < groups;
  let owned = min(group.y * THREADS + tid, groups - 1u);
  let column = owned * 16u;
  let word0 = owned * WORDS;
  let inner4 = p.inner / 4u;
  var acc0: mat4x4<f32>; var acc1: mat4x4<f32>; var acc2: mat4x4<f32>; var acc3: mat4x4<f32>;
  var acc4: mat4x4<f32>; var acc5: mat4x4<f32>; var acc6: mat4x4<f32>; var acc7: mat4x4<f32>;
  var acc8: mat4x4<f32>; var acc9: mat4x4<f32>; var acc10: mat4x4<f32>; var acc11: mat4x4<f32>;
  var acc12: mat4x4<f32>; var acc13: mat4x4<f32>; var acc14: mat4x4<f32>; var acc15: mat4x4<f32>;
  for (var k0 = 0u; k0 < p.inner; k0 += KT) {
    // Stage x[rows of this tile][k0 .. k0 + KT]: consecutive threads load consecutive vec4s of a row.
    for (var e = tid; e < ROWS * (KT / 4u); e += THREADS) {
      let r = min(workgroupRow0 + e / (KT / 4u), p.rows - 1u);
      xs[e] = x[r * inner4 + k0 / 4u + e % (KT / 4u)];
    }
    workgroupBarrier();
    for (var s = 0u; s < KT / 4u; s++) {
      let k = k0 + 4u * s;
      let w0 = weights(k, rowWords, word0);
      let w1 = weights(k + 1u, rowWords, word0);
      let w2 = weights(k + 2u, rowWords, word0);
      let w3 = weights(k + 3u, rowWords, word0);
      // ROWS is a pipeline constant: the rows a tile does not have compile away.
      acc0 += rowStep(0u, s, w0, w1, w2, w3);
      if (ROWS > 1u) { acc1 += rowStep(1u, s, w0, w1, w2, w3); }
      if (ROWS > 2u) { acc2 += rowStep(2u, s, w0, w1, w2, w3); }
      if (ROWS > 3u) { acc3 += rowStep(3u, s, w0, w1, w2, w3); }
      if (ROWS > 4u) { acc4 += rowStep(4u, s, w0, w1, w2, w3); }
      if (ROWS > 5u) { acc5 += rowStep(5u, s, w0, w1, w2, w3); }
      if (ROWS > 6u) { acc6 += rowStep(6u, s, w0, w1, w2, w3); }
      if (ROWS > 7u) { acc7 += rowStep(7u, s, w0, w1, w2, w3); }
      if (ROWS > 8u) { acc8 += rowStep(8u, s, w0, w1, w2, w3); }
      if (ROWS > 9u) { acc9 += rowStep(9u, s, w0, w1, w2, w3); }
      if (ROWS > 10u) { acc10 += rowStep(10u, s, w0, w1, w2, w3); }
      if (ROWS > 11u) { acc11 += rowStep(11u, s, w0, w1, w2, w3); }
      if (ROWS > 12u) { acc12 += rowStep(12u, s, w0, w1, w2, w3); }
      if (ROWS > 13u) { acc13 += rowStep(13u, s, w0, w1, w2, w3); }
      if (ROWS > 14u) { acc14 += rowStep(14u, s, w0, w1, w2, w3); }
      if (ROWS > 15u) { acc15 += rowStep(15u, s, w0, w1, w2, w3); }
    }
    workgroupBarrier();
  }
  store(0u, column, acc0); store(1u, column, acc1); store(2u, column, acc2); store(3u, column, acc3);
  store(4u, column, acc4); store(5u, column, acc5); store(6u, column, acc6); store(7u, column, acc7);
  store(8u, column, acc8); store(9u, column, acc9); store(10u, column, acc10); store(11u, column, acc11);
  store(12u, column, acc12); store(13u, column, acc13); store(14u, column, acc14); store(15u, column, acc15);
}
