import * as tf from '@tensorflow/tfjs-core';
import { LOSS_NAMES, type LossName } from './config';
import { LstmConfigError, LstmInputError } from './errors';

/**
 * Training losses. Both reduce to a mean, optionally over masked positions only:
 *
 *   mse                  mean over positions and outputs of (pred - target)^2
 *   softmaxCrossEntropy  mean over positions of -sum_k target_k * log_softmax(pred)_k
 *
 * `pred` holds raw scores (logits) for softmaxCrossEntropy: the softmax is part of the loss, as with
 * PyTorch's `CrossEntropyLoss` and Keras's `from_logits=True`. Its targets are class probabilities of
 * the same shape as `pred`, one-hot for hard labels (convert class indices with `oneHot`); that keeps
 * one target layout for both losses and allows soft labels. `validateTargets` checks them.
 *
 * A position is one row of the last axis: one sequence for a last-step head ([B, O]), one step of one
 * sequence for a many-to-many head ([B, T, O]). `mask` ([B] or [B, T], 1 = counts, 0 = padding) drops
 * positions, e.g. the steps past each sequence's length.
 */

export function checkLossName(loss: unknown, field = 'loss'): LossName {
  if (!LOSS_NAMES.includes(loss as LossName)) throw new LstmConfigError(field, `one of ${LOSS_NAMES.join(', ')}`, loss);
  return loss as LossName;
}

/** Each loss per position: the shape of `pred` without its last axis (`axis`). */
const PER_POSITION = {
  mse: (pred, target, axis) => tf.mean(tf.squaredDifference(pred, target), axis),
  softmaxCrossEntropy: (pred, target, axis) => tf.neg(tf.sum(tf.mul(target, tf.logSoftmax(pred, axis)), axis)),
} satisfies Record<LossName, (pred: tf.Tensor, target: tf.Tensor, axis: number) => tf.Tensor>;

/**
 * The loss as a scalar tensor (differentiable with respect to `pred`). Shapes: `pred` and `target`
 * equal, rank 2 or 3; `mask` the shape of `pred` without its last axis.
 */
export function computeLoss(loss: LossName, pred: tf.Tensor, target: tf.Tensor, mask?: tf.Tensor): tf.Scalar {
  if (pred.shape.length !== target.shape.length || pred.shape.some((s, i) => s !== target.shape[i])) {
    throw new LstmInputError(
      'target',
      `shape [${pred.shape.join(', ')}] (the prediction's)`,
      `shape [${target.shape.join(', ')}]`,
    );
  }
  if (mask && (mask.rank !== pred.rank - 1 || mask.shape.some((s, i) => s !== pred.shape[i]))) {
    throw new LstmInputError(
      'mask',
      `shape [${pred.shape.slice(0, -1).join(', ')}]`,
      `shape [${mask.shape.join(', ')}]`,
    );
  }
  return tf.tidy(() => {
    const last = pred.rank - 1;
    const perPosition = PER_POSITION[loss](pred, target, last);
    if (!mask) return tf.mean(perPosition) as tf.Scalar;
    // Mean over the positions that count; max(count, 1) keeps an all-padding batch at 0, not NaN.
    return tf.div(tf.sum(tf.mul(perPosition, mask)), tf.maximum(tf.sum(mask), 1)) as tf.Scalar;
  });
}

/**
 * Checks targets before training: finite everywhere and, for softmaxCrossEntropy, each row a
 * probability vector (entries >= 0 summing to 1 within 1e-3). `data` is row-major with rows of
 * length `width`; throws `LstmInputError` naming the first bad row.
 */
export function validateTargets(loss: LossName, data: ArrayLike<number>, width: number, field = 'y'): void {
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i]))
      throw new LstmInputError(`${field}`, 'finite values', `${data[i]} at flat index ${i}`);
  }
  if (loss !== 'softmaxCrossEntropy') return;
  for (let r = 0; r * width < data.length; r++) {
    let sum = 0;
    for (let k = 0; k < width; k++) {
      const v = data[r * width + k];
      if (v < 0)
        throw new LstmInputError(
          `${field} row ${r}`,
          'class probabilities >= 0 (one-hot targets for softmaxCrossEntropy)',
          v,
        );
      sum += v;
    }
    if (Math.abs(sum - 1) > 1e-3) {
      throw new LstmInputError(
        `${field} row ${r}`,
        'class probabilities summing to 1 (one-hot targets for softmaxCrossEntropy)',
        `a sum of ${sum}`,
      );
    }
  }
}

/**
 * One-hot rows from class indices: `labels` of any nesting ([N] or [N][T]) becomes the same nesting
 * with a trailing axis of `numClasses`. Throws `LstmInputError` for an index outside 0..numClasses-1.
 */
export function oneHot(labels: number[], numClasses: number): number[][];
export function oneHot(labels: number[][], numClasses: number): number[][][];
export function oneHot(labels: number[] | number[][], numClasses: number): number[][] | number[][][] {
  if (!Number.isInteger(numClasses) || numClasses < 1)
    throw new LstmConfigError('numClasses', 'a positive integer', numClasses);
  const row = (label: number, path: string) => {
    if (!Number.isInteger(label) || label < 0 || label >= numClasses) {
      throw new LstmInputError(`labels${path}`, `a class index in 0..${numClasses - 1}`, label);
    }
    const r = new Array<number>(numClasses).fill(0);
    r[label] = 1;
    return r;
  };
  return (labels as Array<number | number[]>).map((l, i) =>
    Array.isArray(l) ? l.map((m, j) => row(m, `[${i}][${j}]`)) : row(l, `[${i}]`),
  ) as number[][] | number[][][];
}
