import * as tf from '@tensorflow/tfjs-core';
import { LstmInputError, describe } from './errors';
import type { LossName, SequenceModelConfig } from './config';
import { validateTargets } from './losses';

/**
 * Training data for `fit`, always batch-first whatever the model's layout:
 *   x        [N, T, inputSize]
 *   y        [N, T, outputSize] for a manyToMany head, [N, outputSize] for a lastStep head
 *   lengths  optional, N integers in 1..T: each sequence's true length in the padded x
 * x and y may be nested number arrays, tensors (only read, never disposed) or `{ data, shape }` with
 * row-major data (what the synthetic generators return).
 */
export type DataArray = tf.Tensor | { data: ArrayLike<number>; shape: number[] } | NestedArray;
export interface NestedArray extends Array<number | NestedArray> {}

export interface FitData {
  x: DataArray;
  y: DataArray;
  lengths?: ArrayLike<number>;
}

/** Data checked and flattened once, from which batches are cut. */
export interface PreparedData {
  n: number;
  seqLen: number;
  inputSize: number;
  x: Float32Array;
  /** Shape of one sample's target: [T, O] or [O]. */
  yTail: number[];
  y: Float32Array;
  /** Null when absent or when every sequence has the full length. */
  lengths: Int32Array | null;
}

/**
 * Validates the data against the model and the loss and copies it into flat float32 arrays. Throws
 * `LstmInputError` naming the field, the expected shape and what came.
 */
export async function prepareData(data: FitData, model: SequenceModelConfig, loss: LossName): Promise<PreparedData> {
  if (data === null || typeof data !== 'object') throw new LstmInputError('data', 'an object { x, y, lengths? }', data);
  const I = model.lstm.inputSize;
  const O = model.outputSize;
  const x = await flatten('data.x', data.x, 3, `[N, T, ${I}] (batch-first)`);
  const [n, T, xI] = x.shape;
  if (xI !== I)
    throw new LstmInputError('data.x', `shape [N, T, ${I}] (inputSize ${I})`, `shape [${x.shape.join(', ')}]`);
  if (n < 1 || T < 1)
    throw new LstmInputError('data.x', 'at least one sequence of at least one step', `shape [${x.shape.join(', ')}]`);
  for (let i = 0; i < x.data.length; i++) {
    if (!Number.isFinite(x.data[i]))
      throw new LstmInputError('data.x', 'finite values', `${x.data[i]} at ${position(x.shape, i)}`);
  }
  const yTail = model.head === 'manyToMany' ? [T, O] : [O];
  const yWant = `[${[n, ...yTail].join(', ')}] for a ${model.head} head with outputSize ${O}`;
  const y = await flatten('data.y', data.y, yTail.length + 1, yWant);
  if (y.shape.length !== yTail.length + 1 || y.shape.some((s, i) => s !== [n, ...yTail][i])) {
    throw new LstmInputError('data.y', `shape ${yWant}`, `shape [${y.shape.join(', ')}]`);
  }
  validateTargets(loss, y.data, O, 'data.y');

  let lengths: Int32Array | null = null;
  if (data.lengths !== undefined && data.lengths !== null) {
    const l = data.lengths;
    if (typeof l !== 'object' || typeof l.length !== 'number')
      throw new LstmInputError('data.lengths', `${n} integers in 1..${T}`, l);
    if (l.length !== n)
      throw new LstmInputError('data.lengths', `${n} entries (one per sequence)`, `${l.length} entries`);
    lengths = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const v = l[i];
      if (!Number.isInteger(v) || v < 1 || v > T)
        throw new LstmInputError(`data.lengths[${i}]`, `an integer in 1..${T}`, v);
      lengths[i] = v;
    }
    if (lengths.every((v) => v === T)) lengths = null;
  }
  return { n, seqLen: T, inputSize: I, x: x.data, yTail, y: y.data, lengths };
}

export interface Batch {
  /** [B, T, I], batch-first. */
  x: tf.Tensor3D;
  /** [B, ...yTail] */
  y: tf.Tensor;
  /** [B, T] 1/0 step mask for a manyToMany head with lengths, else null. */
  mask: tf.Tensor2D | null;
  lengths: number[] | undefined;
}

/** The samples at `indices` as new tensors (the caller disposes them). */
export function makeBatch(d: PreparedData, indices: ArrayLike<number>, manyToMany: boolean): Batch {
  const B = indices.length;
  const xRow = d.seqLen * d.inputSize;
  const yRow = d.yTail.reduce((a, b) => a * b, 1);
  const xb = new Float32Array(B * xRow);
  const yb = new Float32Array(B * yRow);
  for (let b = 0; b < B; b++) {
    const i = indices[b];
    xb.set(d.x.subarray(i * xRow, (i + 1) * xRow), b * xRow);
    yb.set(d.y.subarray(i * yRow, (i + 1) * yRow), b * yRow);
  }
  let lengths: number[] | undefined;
  let mask: tf.Tensor2D | null = null;
  if (d.lengths) {
    lengths = Array.from({ length: B }, (_, b) => d.lengths![indices[b]]);
    if (manyToMany) {
      const m = new Float32Array(B * d.seqLen);
      for (let b = 0; b < B; b++) m.fill(1, b * d.seqLen, b * d.seqLen + lengths[b]);
      mask = tf.tensor2d(m, [B, d.seqLen]);
    }
  }
  return {
    x: tf.tensor3d(xb, [B, d.seqLen, d.inputSize]),
    y: tf.tensor(yb, [B, ...d.yTail]),
    mask,
    lengths,
  };
}

/** Disposes a batch's tensors. */
export function disposeBatch(b: Batch): void {
  b.x.dispose();
  b.y.dispose();
  b.mask?.dispose();
}

async function flatten(
  field: string,
  value: DataArray,
  rank: number,
  want: string,
): Promise<{ data: Float32Array; shape: number[] }> {
  if (value instanceof tf.Tensor) {
    if (value.isDisposed) throw new LstmInputError(field, `a live tensor of shape ${want}`, 'a disposed tensor');
    if (value.rank !== rank)
      throw new LstmInputError(field, `rank ${rank}, shape ${want}`, `shape [${value.shape.join(', ')}]`);
    return { data: Float32Array.from(await value.data()), shape: value.shape.slice() };
  }
  if (value !== null && typeof value === 'object' && !Array.isArray(value) && 'data' in value && 'shape' in value) {
    const { data, shape } = value;
    if (!Array.isArray(shape) || shape.length !== rank || !shape.every((s) => Number.isInteger(s) && s >= 0)) {
      throw new LstmInputError(`${field}.shape`, `${rank} sizes, shape ${want}`, shape);
    }
    const size = shape.reduce((a, b) => a * b, 1);
    if (data == null || typeof data.length !== 'number' || data.length !== size) {
      throw new LstmInputError(`${field}.data`, `${size} values for shape [${shape.join(', ')}]`, describe(data));
    }
    return { data: data instanceof Float32Array ? data : Float32Array.from(data), shape: shape.slice() };
  }
  if (!Array.isArray(value))
    throw new LstmInputError(field, `a nested array, tensor or { data, shape } of shape ${want}`, value);
  const shape: number[] = [];
  let level: unknown = value;
  for (let k = 0; k < rank; k++) {
    if (!Array.isArray(level)) throw new LstmInputError(field, `a rank-${rank} nested array of shape ${want}`, value);
    shape.push(level.length);
    level = level[0];
  }
  const out = new Float32Array(shape.reduce((a, b) => a * b, 1));
  let k = 0;
  const walk = (v: unknown, depth: number, path: string) => {
    if (depth === rank) {
      if (typeof v !== 'number') throw new LstmInputError(`${field}${path}`, 'a number', v);
      out[k++] = v;
      return;
    }
    if (!Array.isArray(v) || v.length !== shape[depth]) {
      throw new LstmInputError(
        `${field}${path}`,
        `an array of ${shape[depth]} entries (a rectangular array of shape ${want})`,
        v,
      );
    }
    for (let i = 0; i < v.length; i++) walk(v[i], depth + 1, `${path}[${i}]`);
  };
  walk(value, 0, '');
  return { data: out, shape };
}

function position(shape: number[], flat: number): string {
  const idx: number[] = [];
  for (let d = shape.length - 1; d >= 0; d--) {
    idx.unshift(flat % shape[d]);
    flat = Math.floor(flat / shape[d]);
  }
  return idx.map((i) => `[${i}]`).join('');
}
