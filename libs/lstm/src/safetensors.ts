import * as tf from '@tensorflow/tfjs-core';
import { SafetensorsError } from './errors';

/**
 * Reader and writer of the safetensors format (huggingface/safetensors). Files written here load with
 * `safetensors.torch.load_file`, and are byte-identical to what its `save_file` writes for the same
 * tensors (checked against the byte strings the upstream test suites assert; see
 * test/fixtures/safetensors/make_reference.py).
 *
 * Layout of a file:
 *   bytes [0, 8)       N, the header length, a little-endian u64
 *   bytes [8, 8 + N)   a UTF-8 JSON object: name -> {"dtype", "shape", "data_offsets": [begin, end]},
 *                      plus an optional "__metadata__": {string: string}
 *   bytes [8 + N, ..)  the data section; offsets are relative to its start, little-endian, C order
 *
 * The writer follows the reference implementation (`prepare()` in safetensors/src/tensor.rs) so that
 * our bytes equal Python's for the same tensors:
 *   - tensors are laid out by descending dtype (the Rust enum order, which is increasing alignment:
 *     BOOL < U8 < I8 < I16 < U16 < F16 < BF16 < I32 < U32 < F32 < F64 < I64 < U64), then by name
 *     compared as UTF-8 bytes, so every tensor starts aligned to its element size;
 *   - the header lists `__metadata__` first, then the tensors in that same order, each with the keys
 *     dtype, shape, data_offsets, as compact JSON (serde_json: no spaces, only `"`, `\` and control
 *     characters escaped, which is also what `JSON.stringify` does);
 *   - the header is padded with spaces to a multiple of 8 bytes, so the data section is 8-aligned.
 * Python keeps the metadata in a Rust HashMap, so with two or more metadata keys its key order is
 * arbitrary; we write metadata keys sorted. We never write an empty `"__metadata__":{}` (Python does
 * for an explicit `metadata={}`); both forms read back the same.
 *
 * The reader refuses whatever the reference reader refuses (header length past the buffer or over
 * 100 MB, bad UTF-8 or JSON, unknown dtype, offsets that overlap, leave gaps or do not end exactly at
 * the end of the buffer, a byte range that does not match shape x element size, non-string metadata)
 * with a `SafetensorsError` naming the entry and what was expected versus found. Like it, it ignores
 * unknown fields inside an entry. It does not read 8-bit or smaller floats (no JS type holds them).
 */

/** Element types this module reads and writes, in the reference implementation's enum order. */
export const SAFETENSORS_DTYPES = [
  'BOOL',
  'U8',
  'I8',
  'I16',
  'U16',
  'F16',
  'BF16',
  'I32',
  'U32',
  'F32',
  'F64',
  'I64',
  'U64',
] as const;
export type SafetensorsDtype = (typeof SAFETENSORS_DTYPES)[number];

/** Dtypes newer versions of the format define that this module does not decode; named in errors. */
const KNOWN_UNSUPPORTED = new Set(['F8_E5M2', 'F8_E4M3', 'F8_E8M0', 'F4', 'F6_E2M3', 'F6_E3M2', 'C64']);

/**
 * The typed array holding each dtype's elements. F16 and BF16 have no JS array type: their elements
 * are the raw 16-bit patterns (see `float32ToFloat16Bits` and friends to convert).
 */
export interface SafetensorsDataTypes {
  BOOL: Uint8Array;
  U8: Uint8Array;
  I8: Int8Array;
  I16: Int16Array;
  U16: Uint16Array;
  F16: Uint16Array;
  BF16: Uint16Array;
  I32: Int32Array;
  U32: Uint32Array;
  F32: Float32Array;
  F64: Float64Array;
  I64: BigInt64Array;
  U64: BigUint64Array;
}

/** One tensor as stored: dtype, shape (C order) and exactly prod(shape) elements. */
export type RawTensor<D extends SafetensorsDtype = SafetensorsDtype> = {
  [K in D]: { dtype: K; shape: number[]; data: SafetensorsDataTypes[K] };
}[D];

/** What `decodeSafetensors` returns; `metadata` is `{}` when the file has none. */
export interface DecodedSafetensors {
  /** Tensors keyed by name; keys iterate in data-section order (except integer-like names, which JS objects list first). */
  tensors: Record<string, RawTensor>;
  metadata: Record<string, string>;
}

type TypedArrayCtor = { new (buffer: ArrayBuffer): SafetensorsDataTypes[SafetensorsDtype]; readonly name: string };

const ARRAY_TYPES: Record<SafetensorsDtype, TypedArrayCtor> = {
  BOOL: Uint8Array,
  U8: Uint8Array,
  I8: Int8Array,
  I16: Int16Array,
  U16: Uint16Array,
  F16: Uint16Array,
  BF16: Uint16Array,
  I32: Int32Array,
  U32: Uint32Array,
  F32: Float32Array,
  F64: Float64Array,
  I64: BigInt64Array,
  U64: BigUint64Array,
};

const ITEM_SIZE: Record<SafetensorsDtype, number> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
};

const DTYPE_RANK = new Map<string, number>(SAFETENSORS_DTYPES.map((d, i) => [d, i]));

/** Same limit as the reference implementation (MAX_HEADER_SIZE): a larger header is refused. */
export const MAX_HEADER_BYTES = 100_000_000;

const METADATA_KEY = '__metadata__';
const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const utf8Encoder = new TextEncoder();

// ---------------------------------------------------------------------------------------------
// Encoding

/**
 * Serialises tensors (and optional string metadata) into safetensors bytes, laid out exactly as the
 * Python package does (see the module comment). The input arrays are copied, never kept.
 */
export function encodeSafetensors(entries: Record<string, RawTensor>, metadata?: Record<string, string>): Uint8Array {
  const names = Object.keys(entries);
  for (const name of names) checkEntry(name, entries[name]);
  const metaKeys = metadata === undefined ? [] : checkMetadata(metadata);

  const order = names
    .map((name) => ({ name, bytes: utf8Encoder.encode(name), t: entries[name] }))
    .sort((a, b) => DTYPE_RANK.get(b.t.dtype)! - DTYPE_RANK.get(a.t.dtype)! || compareBytes(a.bytes, b.bytes));

  const parts: string[] = [];
  if (metaKeys.length > 0) {
    const kv = metaKeys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(metadata![k])}`);
    parts.push(`"${METADATA_KEY}":{${kv.join(',')}}`);
  }
  let offset = 0;
  for (const { name, t } of order) {
    const end = offset + t.data.byteLength;
    parts.push(
      `${JSON.stringify(name)}:{"dtype":"${t.dtype}","shape":[${t.shape.join(',')}],"data_offsets":[${offset},${end}]}`,
    );
    offset = end;
  }
  const json = utf8Encoder.encode(`{${parts.join(',')}}`);
  const headerLen = Math.ceil(json.length / 8) * 8;

  const out = new Uint8Array(8 + headerLen + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLen), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLen);
  let pos = 8 + headerLen;
  for (const { t } of order) {
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    out.set(bytes, pos);
    if (!HOST_LITTLE_ENDIAN) swapBytes(out.subarray(pos, pos + bytes.length), ITEM_SIZE[t.dtype]);
    pos += bytes.length;
  }
  return out;
}

function checkEntry(name: string, t: RawTensor): void {
  if (name === METADATA_KEY) throw new SafetensorsError(`tensor name "${METADATA_KEY}" is reserved for the metadata`);
  if (hasLoneSurrogate(name))
    throw new SafetensorsError(`tensor name ${JSON.stringify(name)} is not valid Unicode (lone surrogate)`);
  if (t === null || typeof t !== 'object')
    throw new SafetensorsError(`${name}: expected {dtype, shape, data}, got ${String(t)}`);
  if (!DTYPE_RANK.has(t.dtype)) {
    throw new SafetensorsError(
      `${name}: expected dtype one of ${SAFETENSORS_DTYPES.join(', ')}, got ${JSON.stringify(t.dtype)}`,
    );
  }
  const ctor = ARRAY_TYPES[t.dtype];
  if (!(t.data instanceof ctor)) {
    const got = ArrayBuffer.isView(t.data) ? t.data.constructor.name : typeof t.data;
    throw new SafetensorsError(`${name}: dtype ${t.dtype} expects data as ${ctor.name}, got ${got}`);
  }
  const numel = elementCount(name, t.shape);
  if (numel !== t.data.length) {
    throw new SafetensorsError(
      `${name}: shape [${t.shape.join(', ')}] has ${numel} elements, data has ${t.data.length}`,
    );
  }
}

function checkMetadata(metadata: Record<string, string>): string[] {
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) {
    throw new SafetensorsError(`${METADATA_KEY}: expected an object of strings, got ${typeof metadata}`);
  }
  const keys = Object.keys(metadata);
  for (const k of keys) {
    const v = metadata[k];
    if (typeof v !== 'string') throw new SafetensorsError(`${METADATA_KEY}.${k}: expected a string, got ${typeof v}`);
    if (hasLoneSurrogate(k) || hasLoneSurrogate(v)) {
      throw new SafetensorsError(`${METADATA_KEY}.${k}: not valid Unicode (lone surrogate)`);
    }
  }
  const bytes = new Map(keys.map((k) => [k, utf8Encoder.encode(k)]));
  return keys.sort((a, b) => compareBytes(bytes.get(a)!, bytes.get(b)!));
}

// ---------------------------------------------------------------------------------------------
// Decoding

/**
 * Parses and validates safetensors bytes. Every tensor's data is copied into its own (aligned)
 * typed array, so the result does not alias `bytes`. Throws `SafetensorsError` on any malformation.
 */
export function decodeSafetensors(bytes: Uint8Array): DecodedSafetensors {
  if (!(bytes instanceof Uint8Array)) throw new SafetensorsError(`expected a Uint8Array, got ${typeof bytes}`);
  if (bytes.length < 8) {
    throw new SafetensorsError(`expected at least 8 bytes (the header length), got ${bytes.length}`);
  }
  const n = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw new SafetensorsError(`header length ${n} exceeds the limit of ${MAX_HEADER_BYTES} bytes`);
  }
  const headerLen = Number(n);
  if (8 + headerLen > bytes.length) {
    throw new SafetensorsError(
      `header length ${headerLen} runs past the end of the buffer: expected at least ${8 + headerLen} bytes, got ${bytes.length}`,
    );
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes.subarray(8, 8 + headerLen));
  } catch {
    throw new SafetensorsError('header is not valid UTF-8');
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    throw new SafetensorsError(`header is not valid JSON: ${(e as Error).message}`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) {
    throw new SafetensorsError(
      `header: expected a JSON object, got ${Array.isArray(header) ? 'an array' : JSON.stringify(header)}`,
    );
  }

  const dataStart = 8 + headerLen;
  const dataLen = bytes.length - dataStart;
  let metadata: Record<string, string> = {};
  const infos: Array<{ name: string; dtype: SafetensorsDtype; shape: number[]; begin: number; end: number }> = [];
  for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
    if (name === METADATA_KEY) {
      metadata = readMetadata(value);
      continue;
    }
    const info = readInfo(name, value);
    const numel = elementCount(name, info.shape);
    const need = numel * ITEM_SIZE[info.dtype];
    if (info.end > dataLen) {
      throw new SafetensorsError(
        `${name}: data_offsets [${info.begin}, ${info.end}] run past the data section: expected end <= ${dataLen}, got ${info.end}`,
      );
    }
    if (info.end - info.begin !== need) {
      throw new SafetensorsError(
        `${name}: shape [${info.shape.join(', ')}] of ${info.dtype} needs ${need} bytes, data_offsets [${info.begin}, ${info.end}] hold ${info.end - info.begin}`,
      );
    }
    infos.push({ name, ...info });
  }

  // The entries must tile the data section exactly: no overlap, no gap, nothing left over.
  infos.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  let prev: (typeof infos)[number] | undefined;
  for (const info of infos) {
    if (info.begin !== cursor) {
      const after = prev ? `after ${prev.name} [${prev.begin}, ${prev.end}]` : 'at the start of the data section';
      const what =
        info.begin < cursor ? 'overlaps the previous tensor' : `leaves a gap of ${info.begin - cursor} bytes`;
      throw new SafetensorsError(
        `${info.name}: data_offsets [${info.begin}, ${info.end}] ${what}: expected to begin at ${cursor} ${after}`,
      );
    }
    cursor = info.end;
    prev = info;
  }
  if (cursor !== dataLen) {
    throw new SafetensorsError(
      `data section: expected ${cursor} bytes (the end of the last tensor), got ${dataLen}: ${dataLen - cursor} bytes are not covered by any tensor`,
    );
  }

  // Object.fromEntries defines own properties, so even a tensor named "__proto__" is just a key.
  const tensors: Record<string, RawTensor> = Object.fromEntries(
    infos.map(({ name, dtype, shape, begin, end }) => {
      // Uint8Array's slice copies; a Node Buffer's own `slice` returns a view into a shared pool, whose
      // `.buffer` would then hold unrelated bytes. Call the typed-array method for both.
      const copy = Uint8Array.prototype.slice.call(bytes, dataStart + begin, dataStart + end);
      if (!HOST_LITTLE_ENDIAN) swapBytes(copy, ITEM_SIZE[dtype]);
      return [name, { dtype, shape, data: new ARRAY_TYPES[dtype](copy.buffer) } as RawTensor];
    }),
  );
  return { tensors, metadata };
}

function readMetadata(value: unknown): Record<string, string> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new SafetensorsError(`${METADATA_KEY}: expected an object of strings, got ${JSON.stringify(value)}`);
  }
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'string')
      throw new SafetensorsError(`${METADATA_KEY}.${k}: expected a string, got ${JSON.stringify(v)}`);
  }
  return Object.fromEntries(Object.entries(value));
}

function readInfo(
  name: string,
  value: unknown,
): { dtype: SafetensorsDtype; shape: number[]; begin: number; end: number } {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new SafetensorsError(`${name}: expected {"dtype", "shape", "data_offsets"}, got ${JSON.stringify(value)}`);
  }
  const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
  if (typeof dtype !== 'string' || !DTYPE_RANK.has(dtype)) {
    const why =
      typeof dtype === 'string' && KNOWN_UNSUPPORTED.has(dtype)
        ? ' (a safetensors dtype this reader does not support)'
        : '';
    throw new SafetensorsError(
      `${name}: expected dtype one of ${SAFETENSORS_DTYPES.join(', ')}, got ${JSON.stringify(dtype)}${why}`,
    );
  }
  if (!Array.isArray(shape) || !shape.every(isIndex)) {
    throw new SafetensorsError(
      `${name}: expected shape as an array of non-negative integers, got ${JSON.stringify(shape)}`,
    );
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isIndex) || offsets[0] > offsets[1]) {
    throw new SafetensorsError(
      `${name}: expected data_offsets [begin, end] with 0 <= begin <= end, got ${JSON.stringify(offsets)}`,
    );
  }
  return { dtype: dtype as SafetensorsDtype, shape: shape, begin: offsets[0], end: offsets[1] };
}

// ---------------------------------------------------------------------------------------------
// State dicts (tfjs tensors)

/** Float dtypes a state dict may be written as; tfjs computes in float32, F32 is PyTorch's default. */
export type SafetensorsFloatDtype = 'F32' | 'F64' | 'F16' | 'BF16';

/**
 * Writes a state dict (e.g. `ReluLstm.stateDict()`) as safetensors bytes that
 * `safetensors.torch.load_file` reads and `nn.LSTM.load_state_dict` accepts. float32 tensors are
 * stored as `floatDtype` (default F32), int32 as I32, bool as BOOL. The tensors are only read.
 */
export async function stateDictToSafetensors(
  dict: Record<string, tf.Tensor>,
  metadata?: Record<string, string>,
  options: { floatDtype?: SafetensorsFloatDtype } = {},
): Promise<Uint8Array> {
  const floatDtype = options.floatDtype ?? 'F32';
  if (!['F32', 'F64', 'F16', 'BF16'].includes(floatDtype)) {
    throw new SafetensorsError(`floatDtype: expected F32, F64, F16 or BF16, got ${JSON.stringify(floatDtype)}`);
  }
  for (const [name, t] of Object.entries(dict)) {
    if (!(t instanceof tf.Tensor) || t.isDisposed) {
      throw new SafetensorsError(
        `${name}: expected a live tf.Tensor, got ${t instanceof tf.Tensor ? 'a disposed tensor' : typeof t}`,
      );
    }
    if (t.dtype !== 'float32' && t.dtype !== 'int32' && t.dtype !== 'bool') {
      throw new SafetensorsError(`${name}: expected a float32, int32 or bool tensor, got ${t.dtype}`);
    }
  }
  const entries: Record<string, RawTensor> = Object.fromEntries(
    await Promise.all(
      Object.entries(dict).map(async ([name, t]): Promise<[string, RawTensor]> => {
        const shape = t.shape.slice();
        if (t.dtype === 'float32') return [name, fromFloat32(floatDtype, shape, await t.data<'float32'>())];
        if (t.dtype === 'int32') return [name, { dtype: 'I32', shape, data: Int32Array.from(await t.data<'int32'>()) }];
        return [name, { dtype: 'BOOL', shape, data: Uint8Array.from(await t.data<'bool'>()) }];
      }),
    ),
  );
  return encodeSafetensors(entries, metadata);
}

/**
 * Reads safetensors bytes into new tfjs tensors (the caller disposes them). Float dtypes become
 * float32 (F64 is rounded, F16/BF16 widened exactly); integer dtypes become int32, refusing values
 * outside its range; BOOL becomes bool.
 */
export function safetensorsToStateDict(bytes: Uint8Array): {
  stateDict: Record<string, tf.Tensor>;
  metadata: Record<string, string>;
} {
  const { tensors, metadata } = decodeSafetensors(bytes);
  // Convert everything first, so a bad entry throws before any tensor exists.
  const converted = Object.entries(tensors).map(([name, raw]) => [name, toTfValues(name, raw)] as const);
  const stateDict: Record<string, tf.Tensor> = Object.fromEntries(
    converted.map(([name, { values, dtype }]) => [name, tf.tensor(values, tensors[name].shape, dtype)]),
  );
  return { stateDict, metadata };
}

function fromFloat32(dtype: SafetensorsFloatDtype, shape: number[], v: Float32Array): RawTensor {
  switch (dtype) {
    case 'F32':
      return { dtype, shape, data: Float32Array.from(v) };
    case 'F64':
      return { dtype, shape, data: Float64Array.from(v) };
    case 'F16':
      return { dtype, shape, data: Uint16Array.from(v, float32ToFloat16Bits) };
    case 'BF16':
      return { dtype, shape, data: Uint16Array.from(v, float32ToBfloat16Bits) };
  }
}

function toTfValues(
  name: string,
  raw: RawTensor,
): { values: Float32Array | Int32Array | Uint8Array; dtype: 'float32' | 'int32' | 'bool' } {
  switch (raw.dtype) {
    case 'F32':
      return { values: raw.data, dtype: 'float32' };
    case 'F64':
      return { values: Float32Array.from(raw.data), dtype: 'float32' };
    case 'F16':
      return { values: Float32Array.from(raw.data, float16BitsToFloat32), dtype: 'float32' };
    case 'BF16':
      return { values: Float32Array.from(raw.data, bfloat16BitsToFloat32), dtype: 'float32' };
    case 'BOOL':
      return { values: raw.data, dtype: 'bool' };
    case 'I32':
      return { values: raw.data, dtype: 'int32' };
    case 'U8':
    case 'I8':
    case 'I16':
    case 'U16':
      return { values: Int32Array.from(raw.data), dtype: 'int32' };
    case 'U32':
    case 'I64':
    case 'U64': {
      const out = new Int32Array(raw.data.length);
      for (let i = 0; i < out.length; i++) {
        const x = raw.data[i];
        const big = BigInt(x);
        if (big < -2147483648n || big > 2147483647n) {
          throw new SafetensorsError(
            `${name}: ${raw.dtype} element ${i} is ${x}, expected it to fit in int32 (tfjs has no 64-bit integers)`,
          );
        }
        out[i] = Number(big);
      }
      return { values: out, dtype: 'int32' };
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Half-precision conversions (round to nearest, ties to even, like PyTorch's `.half()`)

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE 754 binary16 bit pattern nearest to `value` (overflow gives +-Infinity, NaN stays NaN). */
export function float32ToFloat16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e >= 1) {
    // Normal: keep 10 mantissa bits and round on the 13 dropped ones; a carry may bump the exponent
    // (up to infinity), which is the correct rounding.
    let h = (e << 10) | (mant >>> 13);
    const rest = mant & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && (h & 1) === 1)) h++;
    return sign | h;
  }
  // Half subnormal (or zero): with m = 1.mant as a 24-bit integer, the value is m * 2^(e - 14) units
  // of 2^-24, the smallest half subnormal; round m / 2^shift to an integer, ties to even. A float32
  // subnormal has e = -112 and lands in the first return.
  const shift = 14 - e; // >= 14
  if (shift > 24) return sign; // below half the smallest subnormal: rounds to zero
  const m = mant | 0x800000;
  let q = m >>> shift;
  const rest = m & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  if (rest > half || (rest === half && (q & 1) === 1)) q++;
  return sign | q;
}

/** The number a binary16 bit pattern stands for (exact in float32). */
export function float16BitsToFloat32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant !== 0 ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** bfloat16 bit pattern nearest to `value` (the upper half of the float32, rounded to even). */
export function float32ToBfloat16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0];
  if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) return (x >>> 16) | 0x40;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/** The number a bfloat16 bit pattern stands for (exact in float32). */
export function bfloat16BitsToFloat32(bits: number): number {
  u32[0] = (bits & 0xffff) << 16;
  return f32[0];
}

// ---------------------------------------------------------------------------------------------
// Helpers

function isIndex(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function elementCount(name: string, shape: unknown): number {
  if (!Array.isArray(shape) || !shape.every(isIndex)) {
    throw new SafetensorsError(
      `${name}: expected shape as an array of non-negative integers, got ${JSON.stringify(shape)}`,
    );
  }
  let n = 1;
  for (const d of shape) {
    n *= d;
    if (!Number.isSafeInteger(n))
      throw new SafetensorsError(`${name}: shape [${shape.join(', ')}] has too many elements`);
  }
  return n;
}

/** Byte-wise comparison: the order of Rust's `String` (UTF-8), which is Unicode code point order. */
function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

function hasLoneSurrogate(s: string): boolean {
  return /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s);
}

function swapBytes(bytes: Uint8Array, size: number): void {
  if (size === 1) return;
  for (let i = 0; i < bytes.length; i += size) bytes.subarray(i, i + size).reverse();
}
