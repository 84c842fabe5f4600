/**
 * One forward pass with its results read back as arrays: what an infer job and a session step both
 * run on a loaded model. Every tensor made here is disposed; the model is the caller's.
 */
import type { SequenceModel } from '@relu-lstm/lstm';
import * as tf from '@tensorflow/tfjs-core';

export interface ForwardInput {
  inputs: number[][][];
  /** `[L*D, B or 1, H]` each; the LSTM broadcasts a batch-1 state itself. Absent: zeros. */
  initialState?: { h0: number[][][]; c0: number[][][] } | null;
  lengths?: number[];
}

/** The outputs (`[B, T, O]`, read by `readOutputs`) and the final state of `model` on `p`. */
export async function forwardArrays<O>(
  model: SequenceModel,
  p: ForwardInput,
  readOutputs: (y: tf.Tensor3D) => Promise<O>,
): Promise<{ outputs: O; hN: number[][][]; cN: number[][][] }> {
  const tensors: tf.Tensor[] = [];
  try {
    const x = tf.tensor3d(p.inputs, undefined, 'float32');
    tensors.push(x);
    let state: { h0: tf.Tensor3D; c0: tf.Tensor3D } | undefined;
    if (p.initialState) {
      state = {
        h0: tf.tensor3d(p.initialState.h0, undefined, 'float32'),
        c0: tf.tensor3d(p.initialState.c0, undefined, 'float32'),
      };
      tensors.push(state.h0, state.c0);
    }
    const out = model.predict(x, state, p.lengths ? { lengths: p.lengths } : {});
    tensors.push(out.y, out.hN, out.cN);
    // A many-to-one head gives [B, O]: one output step.
    const y = out.y.rank === 2 ? tf.expandDims(out.y, 1) : out.y;
    if (y !== out.y) tensors.push(y);
    const [outputs, hN, cN] = await Promise.all([
      readOutputs(y as tf.Tensor3D),
      out.hN.array() as Promise<number[][][]>,
      out.cN.array() as Promise<number[][][]>,
    ]);
    return { outputs, hN, cN };
  } finally {
    tf.dispose(tensors);
  }
}
