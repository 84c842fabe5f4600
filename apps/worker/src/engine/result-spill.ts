/**
 * The outputs of an infer job, sized for where they go. Up to `INFER_INLINE_OUTPUTS_MAX` numbers
 * travel inline (nested arrays in the job's result, a Redis value of ~20 MB of JSON at most); more
 * become the job's `outputs.safetensors` artifact (one F32 tensor `outputs` of shape `[B, T, O]`),
 * read from the tensor as one typed array, so no nested array or JSON string of them is ever built.
 */
import { encodeSafetensors } from '@relu-lstm/lstm';
import { INFER_INLINE_OUTPUTS_MAX, INFER_OUTPUTS_ARTIFACT } from '@relu-lstm/jobs';
import type * as tf from '@tensorflow/tfjs-core';

/** Outputs too big for the result, as the artifact's bytes. */
export interface SpilledOutputs {
  name: typeof INFER_OUTPUTS_ARTIFACT;
  shape: [number, number, number];
  bytes: Uint8Array;
}

export type InferOutputs = { inline: number[][][] } | { spilled: SpilledOutputs };

/** `y` `[B, T, O]` inline when small enough, else encoded as `outputs.safetensors`. */
export async function inferOutputs(y: tf.Tensor3D): Promise<InferOutputs> {
  if (y.size <= INFER_INLINE_OUTPUTS_MAX) return { inline: await y.array() };
  const data = (await y.data()) as Float32Array;
  const bytes = encodeSafetensors({ outputs: { dtype: 'F32', shape: [...y.shape], data } });
  return { spilled: { name: INFER_OUTPUTS_ARTIFACT, shape: [...y.shape], bytes } };
}
