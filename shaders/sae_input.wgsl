// The SAE encoder's input, prepared in place in the padded [rows, inner] buffer sae_encode.wgsl reads,
// whether the rows were uploaded from the host or copied out of a model's residual buffer on the GPU:
// every value is checked finite and, for formats that apply it, b_dec is subtracted.
//
// WGSL lets compilers assume arithmetic sees no NaN or infinity, so `v != v` may be folded away; the
// check reads the exponent bits instead. The lowest row holding a non-finite value is kept in
// bad[slot] (u32 max: none), for the host to name when it reads the batch's statistics back.

struct Params {
  rows: u32,
  dIn: u32,       // real width of a row
  inner: u32,     // its padded width (the padding stays zero)
  subtract: u32,  // 1: x - b_dec
  slot: u32,      // which word of `bad` this batch reports into
}

@group(0) @binding(0) var<storage, read_write> x: array<f32>;         // [rows, inner]
@group(0) @binding(1) var<storage, read> bDec: array<f32>;            // [dIn]
@group(0) @binding(2) var<storage, read_write> bad: array<atomic<u32>>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = id.x;
  let r = id.z * groups.y + id.y;  // rows beyond 65535 spill into z
  if (i >= p.dIn || r >= p.rows) { return; }
  let v = x[r * p.inner + i];
  if ((bitcast<u32>(v) & 0x7f800000u) == 0x7f800000u) {
    atomicMin(&bad[p.slot], r);
  }
  if (p.subtract != 0u) {
    x[r * p.inner + i] = v - bDec[i];
  }
}
