/**
 * State dicts saved by `torch.save` (the zip format of torch ≥ 1.6, `torch/serialization.py`
 * `_save`): `<archive>/data.pkl` is a pickle of the dict in which each tensor is
 * `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)` and each
 * storage a persistent id `('storage', torch.FloatStorage, key, location, numel)` whose bytes are
 * `<archive>/data/<key>` (little-endian). Only what a state dict of float tensors needs is read: the
 * unpickler knows the opcodes pickle protocols 2–4 use for these, builds no Python objects, and
 * calls nothing but the two torch globals above (and `collections.OrderedDict`), so a pickle that
 * asks for anything else is refused, never executed.
 *
 * @module
 */

import { unzipSync } from "fflate";
import { readUserFile } from "./files.ts";
import { UserError } from "../core/errors.ts";
import { toFloat32 } from "./safetensors.ts";

/** A float tensor of a state dict, as f32. */
export interface TorchTensor {
  shape: number[];
  data: Float32Array;
}

const STORAGE_DTYPES: Record<string, string> = {
  FloatStorage: "F32",
  HalfStorage: "F16",
  BFloat16Storage: "BF16",
  DoubleStorage: "F64",
};

class Global {
  constructor(readonly module: string, readonly name: string) {}
  get qualified(): string {
    return `${this.module}.${this.name}`;
  }
}

class Mark {}

interface StorageRef {
  kind: "storage";
  dtype: string;
  key: string;
}

class TensorRef {
  constructor(
    readonly storage: StorageRef,
    readonly offset: number,
    readonly shape: number[],
    readonly stride: number[],
  ) {}
}

type Value = unknown;

/** Parses a pickle into plain values: dicts become Maps, tuples and lists arrays, tensors TensorRefs. */
function unpickle(bytes: Uint8Array, what: string): Value {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const text = new TextDecoder();
  const stack: Value[] = [];
  const memo = new Map<number, Value>();
  let at = 0;
  const fail = (message: string): never => {
    throw new UserError(`${what} is not a torch state dict this toolkit can read (${message})`);
  };
  const line = () => {
    const end = bytes.indexOf(0x0a, at);
    if (end < 0) fail("truncated pickle");
    const s = text.decode(bytes.subarray(at, end));
    at = end + 1;
    return s;
  };
  const popMark = () => {
    const items: Value[] = [];
    for (;;) {
      if (!stack.length) fail("unbalanced mark");
      const top = stack.pop();
      if (top instanceof Mark) return items.reverse();
      items.push(top);
    }
  };
  const setItems = (target: Value, items: Value[]) => {
    if (!(target instanceof Map)) fail("SETITEMS on a non-dict");
    for (let i = 0; i < items.length; i += 2) (target as Map<Value, Value>).set(items[i], items[i + 1]);
  };
  const call = (fn: Value, args: Value): Value => {
    if (!(fn instanceof Global) || !Array.isArray(args)) return fail("a call of something other than a global");
    if (fn.qualified === "collections.OrderedDict") return new Map();
    if (fn.qualified === "torch._utils._rebuild_tensor_v2" || fn.qualified === "torch._utils._rebuild_tensor") {
      const [storage, offset, shape, stride] = args as [StorageRef, number, number[], number[]];
      if (storage?.kind !== "storage") fail("a tensor without a storage");
      return new TensorRef(storage, Number(offset), shape.map(Number), stride.map(Number));
    }
    return fail(`it calls ${fn.qualified}`);
  };
  for (;;) {
    if (at >= bytes.length) fail("truncated pickle");
    const op = bytes[at++];
    switch (op) {
      case 0x80: // PROTO
        at += 1;
        break;
      case 0x95: // FRAME
        at += 8;
        break;
      case 0x2e: // STOP
        return stack.pop();
      case 0x63: { // GLOBAL
        const module = line();
        stack.push(new Global(module, line()));
        break;
      }
      case 0x93: { // STACK_GLOBAL
        const name = stack.pop() as string;
        stack.push(new Global(stack.pop() as string, name));
        break;
      }
      case 0x71: // BINPUT
        memo.set(bytes[at++], stack.at(-1));
        break;
      case 0x72: // LONG_BINPUT
        memo.set(view.getUint32(at, true), stack.at(-1));
        at += 4;
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, stack.at(-1));
        break;
      case 0x68: // BINGET
        stack.push(memo.get(bytes[at++]));
        break;
      case 0x6a: // LONG_BINGET
        stack.push(memo.get(view.getUint32(at, true)));
        at += 4;
        break;
      case 0x28: // MARK
        stack.push(new Mark());
        break;
      case 0x29: // EMPTY_TUPLE
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x7d: // EMPTY_DICT
        stack.push(new Map());
        break;
      case 0x74: // TUPLE
      case 0x6c: // LIST
        stack.push(popMark());
        break;
      case 0x85: // TUPLE1
      case 0x86: // TUPLE2
      case 0x87: { // TUPLE3
        const n = op - 0x84;
        stack.push(stack.splice(stack.length - n, n));
        break;
      }
      case 0x61: { // APPEND
        const item = stack.pop();
        (stack.at(-1) as Value[]).push(item);
        break;
      }
      case 0x65: { // APPENDS
        const items = popMark();
        (stack.at(-1) as Value[]).push(...items);
        break;
      }
      case 0x73: { // SETITEM
        const value = stack.pop();
        const key = stack.pop();
        setItems(stack.at(-1), [key, value]);
        break;
      }
      case 0x75: { // SETITEMS
        const items = popMark();
        setItems(stack.at(-1), items);
        break;
      }
      case 0x58: { // BINUNICODE
        const n = view.getUint32(at, true);
        stack.push(text.decode(bytes.subarray(at + 4, at + 4 + n)));
        at += 4 + n;
        break;
      }
      case 0x8c: { // SHORT_BINUNICODE
        const n = bytes[at];
        stack.push(text.decode(bytes.subarray(at + 1, at + 1 + n)));
        at += 1 + n;
        break;
      }
      case 0x4b: // BININT1
        stack.push(bytes[at++]);
        break;
      case 0x4d: // BININT2
        stack.push(view.getUint16(at, true));
        at += 2;
        break;
      case 0x4a: // BININT
        stack.push(view.getInt32(at, true));
        at += 4;
        break;
      case 0x8a: { // LONG1
        const n = bytes[at];
        let value = 0n;
        for (let i = n - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[at + 1 + i]);
        if (n && bytes[at + n] & 0x80) value -= 1n << BigInt(8 * n);
        stack.push(Number(value));
        at += 1 + n;
        break;
      }
      case 0x47: // BINFLOAT
        stack.push(view.getFloat64(at, false));
        at += 8;
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x51: { // BINPERSID
        const id = stack.pop() as Value[];
        const [kind, type, key] = id as [string, Global, string];
        if (kind !== "storage" || !(type instanceof Global)) fail("an unknown persistent id");
        const dtype = STORAGE_DTYPES[type.name];
        if (!dtype) fail(`${type.name} tensors are not floating point`);
        stack.push({ kind: "storage", dtype, key: String(key) } satisfies StorageRef);
        break;
      }
      case 0x52: { // REDUCE
        const args = stack.pop();
        stack.push(call(stack.pop(), args));
        break;
      }
      case 0x62: // BUILD: the state of an OrderedDict (its _metadata) is not needed
        stack.pop();
        break;
      default:
        fail(`pickle opcode 0x${op.toString(16)} at byte ${at - 1}`);
    }
  }
}

/** Reads every tensor of a state dict saved by `torch.save` at `path`, as f32. */
export async function readTorchStateDict(path: string): Promise<Map<string, TorchTensor>> {
  const zipped = await readUserFile(path, "weights file");
  let files: Record<string, Uint8Array>;
  try {
    files = unzipSync(zipped);
  } catch {
    throw new UserError(`${path} is not a torch zip file (torch.save of torch ≥ 1.6): re-save it with torch.save`);
  }
  const pkl = Object.keys(files).find((name) => /^[^/]+\/data\.pkl$/.test(name));
  if (!pkl) throw new UserError(`${path} has no data.pkl: not a file written by torch.save`);
  const archive = pkl.slice(0, -"data.pkl".length);
  const root = unpickle(files[pkl], path);
  if (!(root instanceof Map)) throw new UserError(`${path} holds no state dict (a dict of tensors)`);
  const out = new Map<string, TorchTensor>();
  for (const [name, value] of root as Map<Value, Value>) {
    if (!(value instanceof TensorRef)) continue;
    const { storage, offset, shape, stride } = value;
    const bytes = files[`${archive}data/${storage.key}`];
    if (!bytes) throw new UserError(`${path} lacks the data of tensor ${String(name)}: truncated`);
    let expected = 1;
    for (let i = shape.length - 1; i >= 0; i--) {
      if (shape[i] > 1 && stride[i] !== expected) {
        throw new UserError(`${path}: tensor ${String(name)} is not contiguous: re-save it with .contiguous()`);
      }
      expected *= shape[i];
    }
    const width = storage.dtype === "F64" ? 8 : storage.dtype === "F32" ? 4 : 2;
    const range = bytes.subarray(offset * width, (offset + expected) * width);
    if (range.length !== expected * width) throw new UserError(`${path}: tensor ${String(name)} is truncated`);
    out.set(String(name), { shape, data: toFloat32(storage.dtype, range, `${path}:${String(name)}`) });
  }
  return out;
}
