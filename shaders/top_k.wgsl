// Top-k of each row, in place: the k largest values of a row are kept (ReLU'd, as TopK SAEs do) and
// the rest set to 0; among equal values the lower column wins, so the result equals a host sort by
// (value descending, index ascending). One workgroup per row.
//
// Radix select, not a sort: each value maps to a u32 key that orders like the float, and up to four
// passes over the row (8 bits each, most significant first) histogram the keys that still match the
// bits fixed so far and fix the next 8 bits of the k-th largest key, T. As soon as the bin holding T
// is to be kept whole, every key from that bin up is kept (one more pass). Otherwise, with all bits
// of T fixed, every key > T is kept, and of the keys == T the first `need` in column order: each
// thread counts the ties in its own contiguous segment of the row, a prefix sum over threads says how
// many ties lie before it.

struct Params {
  rows: u32,
  cols: u32,
  k: u32,
  _pad: u32,
}

@group(0) @binding(0) var<storage, read_write> values: array<f32>;  // [rows, cols]
@group(0) @binding(1) var<uniform> p: Params;

const THREADS: u32 = 256u;

var<workgroup> histogram: array<atomic<u32>, 256>;
var<workgroup> ties: array<u32, THREADS>;  // ties in each thread's segment, then the ties before it
var<workgroup> prefix: u32;                // the bits of T fixed so far
var<workgroup> mask: u32;                  // which bits those are
var<workgroup> need: u32;                  // how many of the keys matching `prefix` are still to keep
var<workgroup> settled: u32;               // 1 once all keys matching `prefix` are to be kept

// A u32 that orders like the float: flip all bits of negatives, the sign bit of positives. (-0 sorts
// below +0, unlike in a float comparison; both come out as 0 whether kept or not.)
fn key(v: f32) -> u32 {
  let bits = bitcast<u32>(v);
  return select(bits | 0x80000000u, ~bits, (bits & 0x80000000u) != 0u);
}

@compute @workgroup_size(THREADS)
fn main(
  @builtin(workgroup_id) group: vec3<u32>,
  @builtin(num_workgroups) groups: vec3<u32>,
  @builtin(local_invocation_index) tid: u32,
) {
  // Rows beyond 65535 continue in y; the row is uniform across the workgroup.
  let row = group.y * groups.x + group.x;
  if (row >= p.rows) { return; }
  let base = row * p.cols;
  if (p.k >= p.cols) {
    for (var c = tid; c < p.cols; c += THREADS) { values[base + c] = max(values[base + c], 0.0); }
    return;
  }
  if (tid == 0u) {
    prefix = 0u;
    mask = 0u;
    need = p.k;
    settled = 0u;
  }
  for (var shift = 24u; ; shift -= 8u) {
    // Once the bin of T is to be kept whole (often after two digits), later digits change nothing.
    if (workgroupUniformLoad(&settled) == 1u) { break; }
    atomicStore(&histogram[tid], 0u);
    workgroupBarrier();
    for (var c = tid; c < p.cols; c += THREADS) {
      let kv = key(values[base + c]);
      if ((kv & mask) == prefix) { atomicAdd(&histogram[(kv >> shift) & 0xffu], 1u); }
    }
    workgroupBarrier();
    if (tid == 0u) {
      // The digit of T: walk the bins from the largest until they hold `need` keys.
      var above = 0u;
      var digit = 255u;
      loop {
        let n = atomicLoad(&histogram[digit]);
        if (above + n >= need || digit == 0u) { break; }
        above += n;
        digit -= 1u;
      }
      prefix |= digit << shift;
      mask |= 0xffu << shift;
      need -= above;
      settled = select(0u, 1u, atomicLoad(&histogram[digit]) == need);
    }
    if (shift == 0u) { break; }
  }
  let whole = workgroupUniformLoad(&settled) == 1u;
  if (whole) {
    // Keep every key from T's bin up.
    for (var c = tid; c < p.cols; c += THREADS) {
      let v = values[base + c];
      values[base + c] = select(0.0, max(v, 0.0), (key(v) & mask) >= prefix);
    }
    return;
  }
  // All 32 bits fixed: T itself, of which the first `need` in column order are kept. Thread i owns
  // columns [i * segment, (i + 1) * segment).
  let segment = (p.cols + THREADS - 1u) / THREADS;
  let first = min(tid * segment, p.cols);
  let last = min(first + segment, p.cols);
  var mine = 0u;
  for (var c = first; c < last; c++) {
    if (key(values[base + c]) == prefix) { mine++; }
  }
  ties[tid] = mine;
  workgroupBarrier();
  if (tid == 0u) {
    var before = 0u;
    for (var i = 0u; i < THREADS; i++) {
      let n = ties[i];
      ties[i] = before;
      before += n;
    }
  }
  workgroupBarrier();
  var tiesBefore = ties[tid];
  for (var c = first; c < last; c++) {
    let v = values[base + c];
    let kv = key(v);
    var keep = kv > prefix;
    if (kv == prefix) {
      keep = tiesBefore < need;
      tiesBefore++;
    }
    values[base + c] = select(0.0, max(v, 0.0), keep);
  }
}
