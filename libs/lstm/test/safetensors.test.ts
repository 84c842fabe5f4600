/**
 * safetensors reader/writer: byte equality with the reference implementation, round trips, the
 * tfjs state-dict helpers, half-precision rounding, and every malformed input.
 *
 * Two independent references, neither run here (tests never need Python):
 *  - byte strings that the upstream test suites assert for the real implementation (copied below with
 *    where they come from);
 *  - fixtures/safetensors/*.safetensors written by fixtures/safetensors/make_reference.py, which
 *    reproduces those same upstream vectors before writing, and checks with PyTorch that the LSTM files
 *    load into torch.nn.LSTM (see its docstring; the `safetensors` Python package itself is not
 *    installable here, it is on PyPI only).
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { readFileSync } from 'fs';
import { join } from 'path';
import { SafetensorsError } from '../src/errors';
import {
  RawTensor,
  SafetensorsDtype,
  bfloat16BitsToFloat32,
  decodeSafetensors,
  encodeSafetensors,
  float16BitsToFloat32,
  float32ToBfloat16Bits,
  float32ToFloat16Bits,
  safetensorsToStateDict,
  stateDictToSafetensors,
} from '../src/safetensors';
import { useCpuBackendWithLeakCheck } from './helpers/leak-check';

const DIR = join(__dirname, 'fixtures', 'safetensors');

interface RefTensor {
  dtype: SafetensorsDtype;
  shape: number[];
  values: Array<number | string>;
}
interface RefFile {
  metadata: Record<string, string> | null;
  tensors: Record<string, RefTensor>;
  source?: string;
}
const reference = JSON.parse(readFileSync(join(DIR, 'reference.json'), 'utf8')) as {
  files: Record<string, RefFile>;
  rounding: { f16: Array<[number | string, number]>; bf16: Array<[number | string, number]> };
};

function readFixture(name: string): Uint8Array {
  return new Uint8Array(readFileSync(join(DIR, name)));
}

/** A RawTensor from reference.json's description (I64/U64 come as decimal strings). */
function rawFromRef(t: RefTensor): RawTensor {
  const { dtype, shape } = t;
  const nums = () => t.values.map(Number);
  const bigs = () => t.values.map((v) => BigInt(v));
  switch (dtype) {
    case 'BOOL':
      return { dtype, shape, data: Uint8Array.from(nums()) };
    case 'U8':
      return { dtype, shape, data: Uint8Array.from(nums()) };
    case 'I8':
      return { dtype, shape, data: Int8Array.from(nums()) };
    case 'I16':
      return { dtype, shape, data: Int16Array.from(nums()) };
    case 'U16':
      return { dtype, shape, data: Uint16Array.from(nums()) };
    case 'F16':
      return { dtype, shape, data: Uint16Array.from(nums()) };
    case 'BF16':
      return { dtype, shape, data: Uint16Array.from(nums()) };
    case 'I32':
      return { dtype, shape, data: Int32Array.from(nums()) };
    case 'U32':
      return { dtype, shape, data: Uint32Array.from(nums()) };
    case 'F32':
      return { dtype, shape, data: Float32Array.from(nums()) };
    case 'F64':
      return { dtype, shape, data: Float64Array.from(nums()) };
    case 'I64':
      return { dtype, shape, data: BigInt64Array.from(bigs()) };
    case 'U64':
      return { dtype, shape, data: BigUint64Array.from(bigs()) };
  }
}

/** Bytes from a latin-1 string (each char one byte), for writing the upstream vectors as text. */
function latin1(s: string): Uint8Array {
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

/** A file with a hand-written header (padded to 8 unless told) and `dataLen` data bytes. */
function build(header: unknown, dataLen: number, pad = true): Uint8Array {
  let text = typeof header === 'string' ? header : JSON.stringify(header);
  if (pad) text += ' '.repeat((8 - (Buffer.byteLength(text) % 8)) % 8);
  const json = new TextEncoder().encode(text);
  const len = new Uint8Array(8);
  new DataView(len.buffer).setBigUint64(0, BigInt(json.length), true);
  return concat(len, json, new Uint8Array(dataLen));
}

function expectSafetensorsError(fn: () => unknown, ...fragments: string[]): SafetensorsError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(SafetensorsError);
  const err = caught as SafetensorsError;
  expect(err.code).toBe('invalid_safetensors');
  for (const f of fragments) expect(err.message).toContain(f);
  return err;
}

function f32bytes(values: number[]): Uint8Array {
  return new Uint8Array(Float32Array.from(values).buffer);
}

useCpuBackendWithLeakCheck();

describe('upstream test vectors (bytes the reference implementation is tested to produce)', () => {
  it('safetensors.torch.save({"test": torch.zeros((2, 2))}) (bindings/python/tests/test_pt.py, test_in_memory)', () => {
    const expected = concat(
      latin1('@\0\0\0\0\0\0\0{"test":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}    '),
      new Uint8Array(16),
    );
    expect(encodeSafetensors({ test: { dtype: 'F32', shape: [2, 2], data: new Float32Array(4) } })).toEqual(expected);
    const { tensors, metadata } = decodeSafetensors(expected);
    expect(tensors.test).toEqual({ dtype: 'F32', shape: [2, 2], data: new Float32Array(4) });
    expect(metadata).toEqual({});
  });

  it('"attn.0" F32 [1,2,3] = 0..5, a 64-byte header needing no padding (safetensors/src/tensor.rs, test_serialization)', () => {
    const expected = concat(
      latin1('@\0\0\0\0\0\0\0{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}'),
      f32bytes([0, 1, 2, 3, 4, 5]),
    );
    const data = Float32Array.from([0, 1, 2, 3, 4, 5]);
    expect(encodeSafetensors({ 'attn.0': { dtype: 'F32', shape: [1, 2, 3], data } })).toEqual(expected);
    expect(decodeSafetensors(expected).tensors['attn.0'].data).toEqual(data);
  });

  it('"attn0" [1,1,2,3]: seven padding spaces (tensor.rs, test_serialization_forced_alignement)', () => {
    const expected = concat(
      latin1('H\0\0\0\0\0\0\0{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}       '),
      f32bytes([0, 1, 2, 3, 4, 5]),
    );
    const data = Float32Array.from([0, 1, 2, 3, 4, 5]);
    expect(encodeSafetensors({ attn0: { dtype: 'F32', shape: [1, 1, 2, 3], data } })).toEqual(expected);
  });

  it('no tensors, without and with metadata (tensor.rs, test_empty)', () => {
    expect(Array.from(encodeSafetensors({}))).toEqual([8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]);
    const withMeta = latin1('(\0\0\0\0\0\0\0{"__metadata__":{"framework":"pt"}}     ');
    expect(encodeSafetensors({}, { framework: 'pt' })).toEqual(withMeta);
    expect(decodeSafetensors(withMeta)).toEqual({ tensors: {}, metadata: { framework: 'pt' } });
  });

  it('reads what the reference reader accepts: zero-size tensors, scalars, JSON whitespace padding', () => {
    // tensor.rs test_zero_sized_tensor / test_empty_shapes_allowed / test_whitespace_padded_header
    const zero = decodeSafetensors(build('{"test":{"dtype":"I32","shape":[2,0],"data_offsets":[0, 0]}}', 0, false));
    expect(zero.tensors.test).toEqual({ dtype: 'I32', shape: [2, 0], data: new Int32Array(0) });
    const scalar = decodeSafetensors(build('{"test":{"dtype":"I32","shape":[],"data_offsets":[0,4]}}', 4, false));
    expect(scalar.tensors.test).toEqual({ dtype: 'I32', shape: [], data: new Int32Array(1) });
    const ws = concat(latin1('\x06\0\0\0\0\0\0\0{}\r \t\n'));
    expect(decodeSafetensors(ws)).toEqual({ tensors: {}, metadata: {} });
  });
});

describe('reference files from make_reference.py', () => {
  const files = Object.entries(reference.files);

  it.each(files)('%s: our encoder writes exactly the reference bytes, whatever the insertion order', (file, ref) => {
    const bytes = readFixture(file);
    const names = Object.keys(ref.tensors);
    const metadata = ref.metadata ?? undefined;
    for (const order of [names, [...names].reverse()]) {
      const entries: Record<string, RawTensor> = {};
      for (const name of order) entries[name] = rawFromRef(ref.tensors[name]);
      expect(encodeSafetensors(entries, metadata)).toEqual(bytes);
    }
  });

  it.each(files)('%s: decodes to the exact dtypes, shapes, values and metadata', (file, ref) => {
    const { tensors, metadata } = decodeSafetensors(readFixture(file));
    expect(metadata).toEqual(ref.metadata ?? {});
    expect(Object.keys(tensors).sort()).toEqual(Object.keys(ref.tensors).sort());
    for (const [name, t] of Object.entries(ref.tensors)) {
      expect(tensors[name]).toEqual(rawFromRef(t));
    }
  });

  it.each(files)('%s: decode then encode gives the same bytes', (file) => {
    const bytes = readFixture(file);
    const { tensors, metadata } = decodeSafetensors(bytes);
    expect(encodeSafetensors(tensors, metadata)).toEqual(bytes);
  });

  it('orders names as UTF-8 bytes (Rust String order), not as UTF-16 code units', () => {
    const { tensors } = decodeSafetensors(readFixture('mixed_dtypes.safetensors'));
    const names = Object.keys(tensors);
    // Data-section order: descending dtype, then name. U+E000 sorts before U+1F600 in UTF-8 (EE < F0)
    // but after it in UTF-16 (E000 > D83D), where JS's default sort would put it.
    expect(names.slice(0, 3)).toEqual(['u64', 'i64', 'f64']);
    expect(names.indexOf('\ue000private')).toBeLessThan(names.indexOf('\u{1F600}emoji'));
    expect(names.slice(-3)).toEqual(['i8', 'u8', 'mask']);
  });

  it('stateDictToSafetensors of the two-layer fixture equals the reference file byte for byte', async () => {
    const fixture = JSON.parse(readFileSync(join(__dirname, 'fixtures', 'two_layer.json'), 'utf8')) as {
      state_dict: Record<string, number[] | number[][]>;
    };
    const dict: Record<string, tf.Tensor> = {};
    for (const [name, v] of Object.entries(fixture.state_dict)) dict[name] = tf.tensor(v, undefined, 'float32');
    try {
      const bytes = await stateDictToSafetensors(dict, { format: 'pt' });
      expect(bytes).toEqual(readFixture('lstm_two_layer.safetensors'));
    } finally {
      tf.dispose(Object.values(dict));
    }
  });

  it('safetensorsToStateDict reads the bidirectional LSTM file into float32 tensors with PyTorch names', () => {
    const ref = reference.files['lstm_bidir_two_layer.safetensors'];
    const { stateDict, metadata } = safetensorsToStateDict(readFixture('lstm_bidir_two_layer.safetensors'));
    try {
      expect(metadata).toEqual({});
      expect(Object.keys(stateDict).sort()).toEqual(Object.keys(ref.tensors).sort());
      expect(Object.keys(stateDict)).toContain('weight_hh_l1_reverse');
      for (const [name, t] of Object.entries(ref.tensors)) {
        expect(stateDict[name].dtype).toBe('float32');
        expect(stateDict[name].shape).toEqual(t.shape);
        expect(Array.from(stateDict[name].dataSync())).toEqual(t.values);
      }
    } finally {
      tf.dispose(Object.values(stateDict));
    }
  });
});

describe('state dicts', () => {
  it('round-trips float32, int32 and bool tensors with metadata', async () => {
    const dict = {
      w: tf.tensor(
        [
          [1.5, -2],
          [3.25, 1e-30],
        ],
        [2, 2],
        'float32',
      ),
      n: tf.tensor([7, -8, 2147483647], [3], 'int32'),
      m: tf.tensor([true, false], [2], 'bool'),
      s: tf.scalar(0.5),
    };
    const bytes = await stateDictToSafetensors(dict, { epoch: '3' });
    const { stateDict, metadata } = safetensorsToStateDict(bytes);
    try {
      expect(metadata).toEqual({ epoch: '3' });
      for (const [name, t] of Object.entries(dict)) {
        expect(stateDict[name].dtype).toBe(t.dtype);
        expect(stateDict[name].shape).toEqual(t.shape);
        expect(Array.from(stateDict[name].dataSync())).toEqual(Array.from(t.dataSync()));
      }
      expect(decodeSafetensors(bytes).tensors.n.dtype).toBe('I32');
    } finally {
      tf.dispose([...Object.values(dict), ...Object.values(stateDict)]);
    }
  });

  it('reads a Node Buffer that is a view into a larger pooled allocation (as small readFile results are)', async () => {
    const w = tf.tensor1d([1, 2, 3]);
    const bytes = await stateDictToSafetensors({ w });
    // Buffer.from(string) and small reads come from a shared pool: byteOffset > 0, .buffer larger.
    const pool = Buffer.alloc(8192, 0x7f);
    Buffer.from(bytes).copy(pool, 1000);
    const view = pool.subarray(1000, 1000 + bytes.length);
    const { stateDict } = safetensorsToStateDict(view);
    try {
      expect(stateDict.w.shape).toEqual([3]);
      expect(Array.from(stateDict.w.dataSync())).toEqual([1, 2, 3]);
    } finally {
      tf.dispose([w, ...Object.values(stateDict)]);
    }
  });

  it.each(['F64', 'F16', 'BF16'] as const)(
    'writes float32 tensors as %s on request and reads them back as float32',
    async (floatDtype) => {
      const values = [1, -2.5, 0.1, 1 / 3, 300];
      const w = tf.tensor1d(values);
      try {
        const bytes = await stateDictToSafetensors({ w }, undefined, { floatDtype });
        expect(decodeSafetensors(bytes).tensors.w.dtype).toBe(floatDtype);
        const { stateDict } = safetensorsToStateDict(bytes);
        const round =
          floatDtype === 'F64'
            ? Math.fround
            : floatDtype === 'F16'
              ? (x: number) => float16BitsToFloat32(float32ToFloat16Bits(x))
              : (x: number) => bfloat16BitsToFloat32(float32ToBfloat16Bits(x));
        expect(stateDict.w.dtype).toBe('float32');
        expect(Array.from(stateDict.w.dataSync())).toEqual(values.map((v) => Math.fround(round(v))));
        tf.dispose(Object.values(stateDict));
      } finally {
        w.dispose();
      }
    },
  );

  it('converts the mixed reference file: floats to float32, small integers to int32, BOOL to bool', () => {
    const bytes = readFixture('mixed_dtypes.safetensors');
    const { tensors, metadata } = decodeSafetensors(bytes);
    // 64-bit integers beyond int32 cannot become tfjs tensors: the whole call refuses, creating nothing.
    expectSafetensorsError(
      () => safetensorsToStateDict(bytes),
      'u64: U64 element 0 is 18446744073709551615',
      'fit in int32',
    );
    const keep = Object.fromEntries(Object.entries(tensors).filter(([n]) => !['i64', 'u64', 'u32'].includes(n)));
    const { stateDict } = safetensorsToStateDict(encodeSafetensors(keep, metadata));
    try {
      expect(stateDict['f64'].dtype).toBe('float32');
      expect(Array.from(stateDict['f64'].dataSync())).toEqual(
        Array.from(tensors['f64'].data as Float64Array, Math.fround),
      );
      expect(Array.from(stateDict['f16'].dataSync())).toEqual([1, -2.5, 65504, 2 ** -24, 0.0999755859375]);
      expect(Array.from(stateDict['bf16'].dataSync())).toEqual([1, -5, bfloat16BitsToFloat32(1)]);
      expect(stateDict['i8'].dtype).toBe('int32');
      expect(Array.from(stateDict['u16'].dataSync())).toEqual([65535, 1]);
      expect(stateDict['mask'].dtype).toBe('bool');
      expect(Array.from(stateDict['mask'].dataSync())).toEqual([1, 0, 0, 1]);
      expect(stateDict['empty'].shape).toEqual([0, 3]);
      expect(stateDict['scalar'].shape).toEqual([]);
    } finally {
      tf.dispose(Object.values(stateDict));
    }
    const inRange = encodeSafetensors({
      big: { dtype: 'I64', shape: [2], data: BigInt64Array.from([-5n, 2147483647n]) },
    });
    const { stateDict: ints } = safetensorsToStateDict(inRange);
    expect(Array.from(ints.big.dataSync())).toEqual([-5, 2147483647]);
    tf.dispose(ints.big);
  });

  it('refuses disposed tensors and dtypes it cannot store', async () => {
    const t = tf.scalar(1);
    t.dispose();
    await expect(stateDictToSafetensors({ t })).rejects.toThrow(SafetensorsError);
    const c = tf.complex([1], [2]);
    await expect(stateDictToSafetensors({ c })).rejects.toThrow(
      /c: expected a float32, int32 or bool tensor, got complex64/,
    );
    c.dispose();
    const w = tf.scalar(1);
    await expect(stateDictToSafetensors({ w }, undefined, { floatDtype: 'F8' as 'F16' })).rejects.toThrow(/floatDtype/);
    w.dispose();
  });
});

describe('half precision', () => {
  const num = (v: number | string) => (typeof v === 'string' ? Number(v) : v);

  it.each(reference.rounding.f16.map(([x, bits]) => [num(x), bits]))(
    'float32ToFloat16Bits(%p) = %p as torch .half()',
    (x, bits) => {
      expect(float32ToFloat16Bits(x)).toBe(bits);
    },
  );

  it.each(reference.rounding.bf16.map(([x, bits]) => [num(x), bits]))(
    'float32ToBfloat16Bits(%p) = %p as torch .bfloat16()',
    (x, bits) => {
      expect(float32ToBfloat16Bits(x)).toBe(bits);
    },
  );

  it('every non-NaN 16-bit pattern survives widening then narrowing, for both formats', () => {
    for (let b = 0; b < 0x10000; b++) {
      const isHalfNaN = (b & 0x7c00) === 0x7c00 && (b & 0x3ff) !== 0;
      if (!isHalfNaN && float32ToFloat16Bits(float16BitsToFloat32(b)) !== b) throw new Error(`f16 ${b}`);
      const isBfNaN = (b & 0x7f80) === 0x7f80 && (b & 0x7f) !== 0;
      if (!isBfNaN && float32ToBfloat16Bits(bfloat16BitsToFloat32(b)) !== b) throw new Error(`bf16 ${b}`);
    }
    expect(Number.isNaN(float16BitsToFloat32(float32ToFloat16Bits(NaN)))).toBe(true);
    expect(Number.isNaN(bfloat16BitsToFloat32(float32ToBfloat16Bits(NaN)))).toBe(true);
  });
});

describe('malformed files throw SafetensorsError naming what was expected and found', () => {
  const good = { w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };

  it('accepts the well-formed baseline used below', () => {
    expect(decodeSafetensors(build(good, 8)).tensors.w.shape).toEqual([2]);
  });

  it('fewer than 8 bytes', () => {
    expectSafetensorsError(() => decodeSafetensors(new Uint8Array(3)), 'at least 8 bytes', 'got 3');
  });

  it('a header length past the end of the buffer', () => {
    expectSafetensorsError(
      () => decodeSafetensors(latin1('<\0\0\0\0\0\0\0{}')),
      'header length 60',
      'expected at least 68 bytes, got 10',
    );
  });

  it('a header length above the 100 MB limit (tensor.rs, test_header_too_large)', () => {
    const bytes = concat(latin1('<\0\0\0\0\xff\xff\xff'), build(good, 8).subarray(8));
    expectSafetensorsError(() => decodeSafetensors(bytes), 'exceeds the limit of 100000000');
  });

  it('a header that is not UTF-8 (tensor.rs, test_invalid_header_non_utf8)', () => {
    expectSafetensorsError(() => decodeSafetensors(latin1('\x01\0\0\0\0\0\0\0\xff')), 'not valid UTF-8');
  });

  it('a header that is not JSON, or not a JSON object', () => {
    expectSafetensorsError(() => decodeSafetensors(latin1('\x01\0\0\0\0\0\0\0{')), 'not valid JSON');
    expectSafetensorsError(() => decodeSafetensors(build('[1,2]', 0)), 'expected a JSON object, got an array');
    expectSafetensorsError(() => decodeSafetensors(build('"w"', 0)), 'expected a JSON object');
    // A byte-order mark is not JSON whitespace for the reference reader either.
    expectSafetensorsError(() => decodeSafetensors(build('\ufeff{}', 0)), 'not valid JSON');
  });

  it('an entry that is not an object', () => {
    expectSafetensorsError(
      () => decodeSafetensors(build({ w: [1, 2] }, 0)),
      'w: expected {"dtype", "shape", "data_offsets"}',
      'got [1,2]',
    );
  });

  it('an unknown dtype, and one the format has but this reader does not', () => {
    expectSafetensorsError(
      () => decodeSafetensors(build({ w: { ...good.w, dtype: 'F33' } }, 8)),
      'w: expected dtype one of',
      'got "F33"',
    );
    expectSafetensorsError(
      () => decodeSafetensors(build({ w: { ...good.w, dtype: 'F8_E4M3' } }, 8)),
      'got "F8_E4M3"',
      'does not support',
    );
    expectSafetensorsError(
      () => decodeSafetensors(build({ w: { shape: [2], data_offsets: [0, 8] } }, 8)),
      'w: expected dtype',
      'got undefined',
    );
  });

  it('a bad shape', () => {
    for (const shape of [[-1], [1.5], '2', [2, null]]) {
      expectSafetensorsError(
        () => decodeSafetensors(build({ w: { ...good.w, shape } }, 8)),
        'w: expected shape as an array of non-negative integers',
        `got ${JSON.stringify(shape)}`,
      );
    }
  });

  it('bad data_offsets', () => {
    for (const offsets of [[0], [0, 8, 9], [8, 0], [-1, 7], [0, '8']]) {
      expectSafetensorsError(
        () => decodeSafetensors(build({ w: { ...good.w, data_offsets: offsets } }, 8)),
        'w: expected data_offsets [begin, end]',
        `got ${JSON.stringify(offsets)}`,
      );
    }
  });

  it('offsets past the end of the data (tensor.rs, test_metadata_incomplete_buffer: missing bytes)', () => {
    expectSafetensorsError(
      () => decodeSafetensors(build(good, 6)),
      'w: data_offsets [0, 8] run past the data section',
      'expected end <= 6, got 8',
    );
  });

  it('shape times element size different from the byte range (tensor.rs, test_invalid_info)', () => {
    const header = { w: { dtype: 'I32', shape: [2, 2], data_offsets: [0, 4] } };
    expectSafetensorsError(
      () => decodeSafetensors(build(header, 4)),
      'w: shape [2, 2] of I32 needs 16 bytes',
      'hold 4',
    );
  });

  it('a shape whose element count overflows (tensor.rs, test_validation_overflow)', () => {
    const header = '{"test":{"dtype":"I32","shape":[2,9007199254740991],"data_offsets":[0,16]}}';
    expectSafetensorsError(
      () => decodeSafetensors(build(header, 16)),
      'test: shape [2, 9007199254740991] has too many elements',
    );
  });

  it('overlapping tensors', () => {
    const header = {
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
    };
    expectSafetensorsError(
      () => decodeSafetensors(build(header, 12)),
      'b: data_offsets [4, 12] overlaps the previous tensor',
      'expected to begin at 8 after a [0, 8]',
    );
    // Two tensors claiming the same bytes (tensor.rs, test_json_attack).
    const same = {
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      b: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
    };
    expectSafetensorsError(() => decodeSafetensors(build(same, 8)), 'overlaps the previous tensor');
  });

  it('a gap between tensors, or before the first', () => {
    const header = {
      a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
      b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] },
    };
    expectSafetensorsError(
      () => decodeSafetensors(build(header, 12)),
      'b: data_offsets [8, 12] leaves a gap of 4 bytes',
      'expected to begin at 4 after a [0, 4]',
    );
    const late = { a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } };
    expectSafetensorsError(
      () => decodeSafetensors(build(late, 8)),
      'a: data_offsets [4, 8] leaves a gap of 4 bytes',
      'at the start of the data section',
    );
  });

  it('bytes after the last tensor (tensor.rs, test_metadata_incomplete_buffer: polyglot file)', () => {
    expectSafetensorsError(
      () => decodeSafetensors(build(good, 12)),
      'data section: expected 8 bytes',
      'got 12',
      '4 bytes are not covered',
    );
  });

  it('metadata that is not an object of strings', () => {
    expectSafetensorsError(
      () => decodeSafetensors(build({ __metadata__: ['x'] }, 0)),
      '__metadata__: expected an object of strings',
    );
    expectSafetensorsError(
      () => decodeSafetensors(build({ __metadata__: { epoch: 3 } }, 0)),
      '__metadata__.epoch: expected a string, got 3',
    );
  });

  it('input that is not a Uint8Array', () => {
    expectSafetensorsError(() => decodeSafetensors('abc' as unknown as Uint8Array), 'expected a Uint8Array');
  });

  it('reads a file that sits at an odd offset inside a larger buffer (no alignment assumptions)', () => {
    const file = encodeSafetensors({ d: { dtype: 'F64', shape: [2], data: Float64Array.from([1.25, -3]) } });
    const host = new Uint8Array(file.length + 3);
    host.set(file, 3);
    expect(decodeSafetensors(host.subarray(3)).tensors.d.data).toEqual(Float64Array.from([1.25, -3]));
  });
});

describe('encoder input checks', () => {
  it('refuses data of the wrong array type or length, unknown dtypes, bad shapes', () => {
    const enc = (t: unknown) => () => encodeSafetensors({ w: t as RawTensor });
    expectSafetensorsError(
      enc({ dtype: 'F32', shape: [2], data: new Float64Array(2) }),
      'w: dtype F32 expects data as Float32Array, got Float64Array',
    );
    expectSafetensorsError(
      enc({ dtype: 'I64', shape: [1], data: [1] }),
      'w: dtype I64 expects data as BigInt64Array, got object',
    );
    expectSafetensorsError(
      enc({ dtype: 'F32', shape: [2, 2], data: new Float32Array(3) }),
      'w: shape [2, 2] has 4 elements, data has 3',
    );
    expectSafetensorsError(
      enc({ dtype: 'F8_E4M3', shape: [1], data: new Uint8Array(1) }),
      'w: expected dtype one of',
      'got "F8_E4M3"',
    );
    expectSafetensorsError(
      enc({ dtype: 'F32', shape: [-2], data: new Float32Array(2) }),
      'w: expected shape as an array of non-negative integers',
    );
    expectSafetensorsError(enc(null), 'w: expected {dtype, shape, data}');
  });

  it('refuses the reserved name, names and metadata that are not valid Unicode, non-string metadata', () => {
    const t: RawTensor = { dtype: 'F32', shape: [1], data: new Float32Array(1) };
    expectSafetensorsError(() => encodeSafetensors({ __metadata__: t }), 'reserved');
    expectSafetensorsError(() => encodeSafetensors({ ['a\ud800']: t }), 'lone surrogate');
    expectSafetensorsError(() => encodeSafetensors({ t }, { k: 'x\udc00' }), '__metadata__.k', 'lone surrogate');
    expectSafetensorsError(
      () => encodeSafetensors({ t }, { k: 1 as unknown as string }),
      '__metadata__.k: expected a string, got number',
    );
  });

  it('writes metadata keys in sorted order and omits an empty metadata block', () => {
    const a = encodeSafetensors({}, { b: '2', a: '1' });
    expect(new TextDecoder().decode(a.subarray(8)).trimEnd()).toBe('{"__metadata__":{"a":"1","b":"2"}}');
    expect(encodeSafetensors({}, {})).toEqual(encodeSafetensors({}));
  });

  it('copies its input: a subarray view is written as its own elements only', () => {
    const big = Float32Array.from([9, 1, 2, 9]);
    const bytes = encodeSafetensors({ v: { dtype: 'F32', shape: [2], data: big.subarray(1, 3) } });
    expect(decodeSafetensors(bytes).tensors.v.data).toEqual(Float32Array.from([1, 2]));
  });
});
