// Per-batch feature statistics: one thread per (token type, feature) of a chunk of encoded rows,
// reducing over the rows of that token type. Sums are of deviations from a shift: the type's first
// row for the all-rows sums, its first active row for the active sums (a first row that is inactive
// would shift active values by 0 and leave their variance to cancel in f32). So f32 keeps the
// variance of features with a large mean; the host turns them into plain sums in f64 and adds them
// into double-double accumulators.

struct Params {
  rows: u32,
  cols: u32,
  types: u32,
  _pad: u32,
}

@group(0) @binding(0) var<storage, read> f: array<f32>;            // [rows, cols] activations
@group(0) @binding(1) var<storage, read> rowType: array<u32>;      // [rows] token type of each row
@group(0) @binding(2) var<storage, read_write> partial: array<f32>;// [types, 9, cols]
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let c = id.x;
  let t = id.y;
  if (c >= p.cols || t >= p.types) { return; }
  var sum = 0.0;
  var sumSq = 0.0;
  var mx = -3.4028234663852886e38;
  var activeCount = 0.0;
  var activeSum = 0.0;
  var activeSumSq = 0.0;
  var activeMin = 3.4028234663852886e38;
  var shift = 0.0;
  var first = true;
  var activeShift = 0.0;
  for (var r = 0u; r < p.rows; r++) {
    if (rowType[r] != t) { continue; }
    let v = f[r * p.cols + c];
    if (first) {
      shift = v;
      first = false;
    }
    let dv = v - shift;
    sum += dv;
    sumSq += dv * dv;
    mx = max(mx, v);
    if (v > 0.0) {
      if (activeCount == 0.0) {
        activeShift = v;
      }
      activeCount += 1.0;
      let da = v - activeShift;
      activeSum += da;
      activeSumSq += da * da;
      activeMin = min(activeMin, v);
    }
  }
  let base = t * 9u * p.cols + c;
  partial[base] = sum;
  partial[base + p.cols] = sumSq;
  partial[base + 2u * p.cols] = mx;
  partial[base + 3u * p.cols] = activeCount;
  partial[base + 4u * p.cols] = activeSum;
  partial[base + 5u * p.cols] = activeSumSq;
  partial[base + 6u * p.cols] = activeMin;
  partial[base + 7u * p.cols] = shift;
  partial[base + 8u * p.cols] = activeShift;
}
