import * as tf from '@tensorflow/tfjs-core';
import type { Activation, RecurrentActivation } from './config';

/**
 * Activations and their derivatives, written for the hand-written backward pass. Derivatives follow
 * PyTorch's conventions at the kinks, because the reference fixtures come from PyTorch:
 * relu'(0) = 0 (threshold_backward), and the clamp-based relu6 / clipped relu / hard sigmoid pass the
 * gradient on the closed interval (clamp_backward uses min <= x <= max).
 */
export interface ActivationSpec {
  kind: Activation;
  /** Ceiling for relu6 (6) and clippedRelu (cellClip); unused otherwise. */
  ceiling: number;
}

export function activationSpec(kind: Activation, cellClip: number | null): ActivationSpec {
  return { kind, ceiling: kind === 'relu6' ? 6 : (cellClip ?? Infinity) };
}

export function activate(spec: ActivationSpec, z: tf.Tensor): tf.Tensor {
  switch (spec.kind) {
    case 'relu':
      return tf.relu(z);
    case 'tanh':
      return tf.tanh(z);
    case 'relu6':
    case 'clippedRelu':
      return tf.clipByValue(z, 0, spec.ceiling);
    case 'linear':
      return z;
  }
}

/**
 * d act(z) / dz given the pre-activation `z` and the activation's output `y`, or null when it is 1
 * everywhere (linear), so the caller can skip a multiply.
 */
export function activationGrad(spec: ActivationSpec, z: tf.Tensor, y: tf.Tensor): tf.Tensor | null {
  switch (spec.kind) {
    case 'relu':
      return tf.step(z, 0);
    case 'tanh':
      return tf.sub(1, tf.square(y));
    case 'relu6':
    case 'clippedRelu':
      return tf.cast(tf.logicalAnd(tf.greaterEqual(z, 0), tf.lessEqual(z, spec.ceiling)), 'float32');
    case 'linear':
      return null;
  }
}

export function recurrentActivate(kind: RecurrentActivation, z: tf.Tensor): tf.Tensor {
  switch (kind) {
    case 'sigmoid':
      return tf.sigmoid(z);
    case 'hardSigmoid':
      // tfjs's hardSigmoid: clip(0.2 z + 0.5, 0, 1).
      return tf.clipByValue(tf.add(tf.mul(z, 0.2), 0.5), 0, 1);
  }
}

/** d rec(z) / dz from the output s alone (both gates are monotone, so s determines the branch). */
export function recurrentActivationGrad(kind: RecurrentActivation, s: tf.Tensor): tf.Tensor {
  switch (kind) {
    case 'sigmoid':
      return tf.mul(s, tf.sub(1, s));
    case 'hardSigmoid':
      // s = clip(0.2 z + 0.5, 0, 1): slope 0.2 on the closed interval. s == 0 or 1 exactly also covers
      // the saturated region, where clamp's gradient is 0; the boundary point itself has measure zero.
      return tf.mul(tf.cast(tf.logicalAnd(tf.greater(s, 0), tf.less(s, 1)), 'float32'), 0.2);
  }
}
