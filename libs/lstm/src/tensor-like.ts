import * as tf from '@tensorflow/tfjs-core';
import { StateDictError, describe } from './errors';

/** What weight-loading functions accept for one tensor. */
export type TensorLike = tf.Tensor | { data: ArrayLike<number>; shape: number[] } | number | NestedNumbers;
export interface NestedNumbers extends Array<number | NestedNumbers> {}

/**
 * Turns a tensor-like value into a float32 tensor of exactly `shape`, or throws `StateDictError`
 * naming the entry with the expected and actual shape. The result is new (or a clone) and owned by
 * the caller.
 */
export function toTensor(name: string, value: TensorLike, shape: number[]): tf.Tensor {
  const want = `[${shape.join(', ')}]`;
  if (value instanceof tf.Tensor) {
    if (value.isDisposed) throw new StateDictError(name, 'the tensor is disposed');
    if (!sameShape(value.shape, shape))
      throw new StateDictError(name, `expected shape ${want}, got [${value.shape.join(', ')}]`);
    return value.dtype === 'float32' ? tf.clone(value) : tf.cast(value, 'float32');
  }
  if (value !== null && typeof value === 'object' && !Array.isArray(value) && 'data' in value && 'shape' in value) {
    const { data, shape: given } = value;
    if (!Array.isArray(given) || !sameShape(given, shape)) {
      throw new StateDictError(name, `expected shape ${want}, got ${describe(given)}`);
    }
    const size = shape.reduce((a, b) => a * b, 1);
    if (data == null || typeof data.length !== 'number' || data.length !== size) {
      throw new StateDictError(name, `expected ${size} values for shape ${want}, got ${describe(data)}`);
    }
    const arr = data instanceof Float32Array ? data : Float32Array.from(data);
    return tf.tensor(arr, shape, 'float32');
  }
  if (Array.isArray(value) || typeof value === 'number') {
    const given = nestedShape(name, value);
    if (!sameShape(given, shape)) throw new StateDictError(name, `expected shape ${want}, got [${given.join(', ')}]`);
    return tf.tensor(value, shape, 'float32');
  }
  throw new StateDictError(
    name,
    `expected a tensor, { data, shape } or nested number arrays of shape ${want}, got ${describe(value)}`,
  );
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** Shape of a nested array, checking that it is rectangular and holds only finite numbers. */
function nestedShape(name: string, value: number | NestedNumbers): number[] {
  if (typeof value === 'number') return [];
  const shape: number[] = [];
  let level: unknown = value;
  while (Array.isArray(level)) {
    shape.push(level.length);
    level = level[0];
  }
  const walk = (v: unknown, depth: number, path: string) => {
    if (depth === shape.length) {
      if (typeof v !== 'number' || !Number.isFinite(v))
        throw new StateDictError(`${name}${path}`, `expected a finite number, got ${describe(v)}`);
      return;
    }
    if (!Array.isArray(v) || v.length !== shape[depth]) {
      throw new StateDictError(
        `${name}${path}`,
        `ragged nested array: expected ${shape[depth]} entries, got ${describe(v)}`,
      );
    }
    v.forEach((e, i) => walk(e, depth + 1, `${path}[${i}]`));
  };
  walk(value, 0, '');
  return shape;
}
