// SAE encoder: f = act(x · W + b) for a batch of input rows against one column chunk of W_enc.
// A tiled matmul: each 16x16 workgroup computes a 64x64 output tile, each thread a 4x4 block held in
// registers; 64x16 slices of x and 16x64 slices of W are staged in workgroup memory per K step.

struct Params {
  rows: u32,        // input vectors in the batch
  inner: u32,       // d_in
  cols: u32,        // features in this chunk
  activation: u32,  // 0 = none (pre-activations), 1 = ReLU, 2 = JumpReLU
}

@group(0) @binding(0) var<storage, read> x: array<f32>;          // [rows, inner]
@group(0) @binding(1) var<storage, read> w: array<f32>;          // [inner, cols]
@group(0) @binding(2) var<storage, read> bias: array<f32>;       // [cols]
@group(0) @binding(3) var<storage, read> threshold: array<f32>;  // [cols]
@group(0) @binding(4) var<storage, read_write> out: array<f32>;  // [rows, cols]
@group(0) @binding(5) var<uniform> p: Params;

const TILE: u32 = 64u;
const KT: u32 = 16u;

var<workgroup> xs: array<array<f32, 64>, 16>;  // xs[k][row]
var<workgroup> ws: array<array<f32, 64>, 16>;  // ws[k][col]

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_id) local: vec3<u32>) {
  let row0 = group.y * TILE;
  let col0 = group.x * TILE;
  let tid = local.y * 16u + local.x;
  var acc: array<array<f32, 4>, 4>;
  for (var k0 = 0u; k0 < p.inner; k0 += KT) {
    // 256 threads stage 16x64 values of each operand: 4 each.
    for (var i = 0u; i < 4u; i++) {
      let e = tid * 4u + i;
      let kk = e / TILE;
      let rc = e % TILE;
      let k = k0 + kk;
      let r = row0 + rc;
      let c = col0 + rc;
      xs[kk][rc] = select(0.0, x[r * p.inner + k], r < p.rows && k < p.inner);
      ws[kk][rc] = select(0.0, w[k * p.cols + c], c < p.cols && k < p.inner);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < KT; kk++) {
      let a = vec4<f32>(xs[kk][local.y * 4u], xs[kk][local.y * 4u + 1u], xs[kk][local.y * 4u + 2u], xs[kk][local.y * 4u + 3u]);
      let b = vec4<f32>(ws[kk][local.x * 4u], ws[kk][local.x * 4u + 1u], ws[kk][local.x * 4u + 2u], ws[kk][local.x * 4u + 3u]);
      for (var i = 0u; i < 4u; i++) {
        acc[i][0] += a[i] * b[0];
        acc[i][1] += a[i] * b[1];
        acc[i][2] += a[i] * b[2];
        acc[i][3] += a[i] * b[3];
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let r = row0 + local.y * 4u + i;
    if (r >= p.rows) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let c = col0 + local.x * 4u + j;
      if (c >= p.cols) { continue; }
      let pre = acc[i][j] + bias[c];
      var f = pre;
      if (p.activation == 1u) { f = max(pre, 0.0); }
      if (p.activation == 2u) { f = select(0.0, pre, pre > threshold[c]); }
      out[r * p.cols + c] = f;
    }
  }
}
