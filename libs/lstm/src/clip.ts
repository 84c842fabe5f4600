import * as tf from '@tensorflow/tfjs-core';
import { LstmConfigError } from './errors';

/**
 * Gradient clipping by global norm, as `torch.nn.utils.clip_grad_norm_` and
 * `tf.clip_by_global_norm` do it (tfjs has neither, nor Keras's `clipnorm`): the norm is taken over
 * all gradients together, sqrt(sum_i ||g_i||^2), and when it exceeds `clipNorm` every gradient is
 * scaled by clipNorm / norm, so the update keeps its direction.
 */

/** sqrt of the sum of squares of every element of every tensor, as a scalar tensor (no sync read). */
export function globalNorm(tensors: tf.Tensor[]): tf.Scalar {
  return tf.tidy(() => {
    if (tensors.length === 0) return tf.scalar(0);
    return tf.sqrt(addMany(tensors.map((t) => tf.sum(tf.square(t))))) as tf.Scalar;
  });
}

/**
 * WebGPU guarantees only 8 storage buffers per shader stage, and tfjs-backend-webgpu's AddN binds one
 * per input plus the output without splitting: with more inputs its pipeline fails validation, and
 * Dawn drops the whole batched command buffer (every result in it reads as zeros).
 */
export const ADDN_MAX_INPUTS = 7;

/** tf.addN over any number of same-shaped tensors, in groups of at most ADDN_MAX_INPUTS. */
export function addMany(tensors: tf.Tensor[]): tf.Tensor {
  return tf.tidy(() => {
    let level = tensors;
    while (level.length > ADDN_MAX_INPUTS) {
      const next: tf.Tensor[] = [];
      for (let i = 0; i < level.length; i += ADDN_MAX_INPUTS) {
        const group = level.slice(i, i + ADDN_MAX_INPUTS);
        next.push(group.length === 1 ? group[0] : tf.addN(group));
      }
      level = next;
    }
    return level.length === 1 ? tf.clone(level[0]) : tf.addN(level);
  });
}

export interface ClipResult<T extends tf.Tensor> {
  /** New tensors (the caller disposes them), scaled by min(1, clipNorm / norm). */
  clipped: T[];
  /** The global norm before clipping. */
  norm: tf.Scalar;
}

/**
 * Scales `tensors` so their global norm is at most `clipNorm`. Stays on the device: no value is read
 * back. With a non-finite norm the result is non-finite too (callers check `norm` and stop); the inputs
 * are never modified or disposed.
 */
export function clipByGlobalNorm<T extends tf.Tensor>(tensors: T[], clipNorm: number): ClipResult<T> {
  if (typeof clipNorm !== 'number' || !Number.isFinite(clipNorm) || clipNorm <= 0) {
    throw new LstmConfigError('clipNorm', 'a finite number > 0', clipNorm);
  }
  return tf.tidy(() => {
    const norm = globalNorm(tensors);
    // clipNorm / max(norm, clipNorm) is 1 when the norm is already within bounds.
    const scale = tf.div(clipNorm, tf.maximum(norm, clipNorm));
    return { clipped: tensors.map((t) => tf.mul(t, scale) as T), norm };
  });
}
