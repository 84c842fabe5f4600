import * as tf from '@tensorflow/tfjs-core';

/**
 * Rows begin..begin+size-1 of x along axis 0: a contiguous block, so the result is a plain copy of it.
 *
 * tfjs 4.22's wasm Slice first copies the WHOLE input out of the wasm heap (readSync) for every slice,
 * so taking the outputs, hN and cN out of each layer's packed [T + 2, B, H] result cost three full
 * copies (and as much garbage) per layer. On wasm this library kernel copies only the rows asked for;
 * every other backend slices with tf.slice, which is already proportional to the output there.
 * Differentiable: the gradient pads dy back to x's shape with zeros, as Slice's does.
 */
export const ROWS_KERNEL = 'ReluLstmRows';

export function sliceRows<T extends tf.Tensor>(x: T, begin: number, size: number): T {
  if (tf.getBackend() !== 'wasm') {
    return tf.slice(x, [begin, ...x.shape.slice(1).map(() => 0)], [size, ...x.shape.slice(1)]) as T;
  }
  return tf.engine().runKernel(ROWS_KERNEL, { x }, { begin, size }) as T;
}

type WasmBackendish = tf.KernelBackend & {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
};

tf.registerKernel({
  kernelName: ROWS_KERNEL,
  backendName: 'wasm',
  kernelFunc: ({ inputs, backend, attrs }) => {
    const x = inputs.x as tf.TensorInfo;
    const { begin, size } = attrs as unknown as { begin: number; size: number };
    const wasm = backend as WasmBackendish;
    const rowLength = x.shape.slice(1).reduce((a, b) => a * b, 1);
    const out = wasm.makeOutput([size, ...x.shape.slice(1)], x.dtype);
    // Views after the allocation, which may grow (and so detach) the heap.
    wasm
      .typedArrayFromHeap(out)
      .set(wasm.typedArrayFromHeap(x).subarray(begin * rowLength, (begin + size) * rowLength));
    return out;
  },
});

tf.registerGradient({
  kernelName: ROWS_KERNEL,
  inputsToSave: ['x'],
  gradFunc: (dy, saved, attrs) => {
    const [x] = saved;
    const { begin, size } = attrs as unknown as { begin: number; size: number };
    const padding: Array<[number, number]> = x.shape.map((_, d) =>
      d === 0 ? [begin, x.shape[0] - begin - size] : [0, 0],
    );
    return { x: () => tf.pad(dy as tf.Tensor, padding) };
  },
});
