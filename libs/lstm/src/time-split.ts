import * as tf from '@tensorflow/tfjs-core';

/**
 * Splits a time-major tensor [T, ...] into T tensors [...].
 *
 * On the cpu and wasm backends tfjs's Slice (and Unpack, which uses it) first copies the whole input
 * out of the backend's memory for every slice, so unstacking T steps costs O(T^2) bytes; there we
 * read the data once and wrap each step's sub-array instead (linear, and no kernel launches). On any
 * other backend (tensorflow, i.e. tfjs-node / CUDA) the data stays on the device and one Unpack
 * kernel does it.
 */
export function splitTime(x: tf.Tensor): tf.Tensor[] {
  const [T, ...rest] = x.shape;
  if (T === 1) return [tf.reshape(x, rest)];
  const backend = tf.getBackend();
  if (strategy === 'kernels' || (backend !== 'cpu' && backend !== 'wasm')) return tf.unstack(x);
  const data = x.dataSync() as Float32Array;
  const size = rest.reduce((a, b) => a * b, 1);
  const out: tf.Tensor[] = new Array(T);
  for (let t = 0; t < T; t++) out[t] = tf.tensor(data.subarray(t * size, (t + 1) * size), rest, x.dtype);
  return out;
}

let strategy: 'auto' | 'kernels' = 'auto';

/**
 * 'kernels' forces the generic-ops path (Unpack), the one GPU backends take, so it can be tested and
 * benchmarked on a CPU host; 'auto' (the default) picks per backend as described above.
 */
export function setTimeSplitStrategy(next: 'auto' | 'kernels'): void {
  strategy = next;
}
