import * as tf from '@tensorflow/tfjs-core';
import type { DirectionInputs, DirectionSpec } from './lstm-direction';
import { backwardPack, forwardPack, wgslBackward, wgslForward } from './wgsl-cell';

/**
 * The fused time loop on webgpu: one WGSL dispatch per step forward and one per step backward
 * (wgsl-cell.ts), with the packed per-step rows it defines. Same contract as lstm-direction.ts's
 * forwardLoop / backwardLoop (value [T + 2, B, H]; gradients of x, h0, c0, wihT, whhT, bias), with its
 * own saved layout: [x, wihT, whhT, mask?, fwd [T*B, Wf] (the forward rows in time order), h0, c0].
 * Everything outside the recursion (input projection, stacking, slicing, the parameter gradients) is
 * a handful of tfjs kernels per call, not per step.
 */
export function wgslForwardLoop(
  spec: DirectionSpec,
  { x, h0, c0, wihT, whhT, bias, mask }: DirectionInputs,
  recording: boolean,
  order: number[],
): { value: tf.Tensor3D; saved: tf.Tensor[] } {
  const [T, B, I] = x.shape;
  const H = spec.hiddenSize;
  const xp = tf.reshape(tf.add(tf.matMul(tf.reshape(x, [T * B, I]), wihT), bias), [T, B, 4 * H]);
  const pack = forwardPack(recording, mask !== null);
  const rows: tf.Tensor2D[] = new Array<tf.Tensor2D>(T);
  const whhI = interleaveGates(whhT, H);
  let prev: tf.Tensor2D = tf.concat([h0, c0], 1);
  for (const t of order) {
    rows[t] = wgslForward(spec, { t, recording, hiddenSize: H }, { xp, whhI, prev, mask });
    prev = rows[t];
  }
  const W = pack.width * H;
  const all = tf.reshape(tf.concat(rows, 0), [T, B, W]);
  const final = (block: number) => tf.reshape(tf.slice(prev, [0, block * H], [B, H]), [1, B, H]);
  const outs = tf.slice(all, [0, 0, pack.out * H], [T, B, H]);
  const value = tf.concat([outs, final(pack.h), final(pack.c)], 0) as tf.Tensor3D;
  const saved = recording ? [x, wihT, whhT, ...(mask ? [mask] : []), tf.reshape(all, [T * B, W]), h0, c0] : [];
  return { value, saved };
}

export function wgslBackwardLoop(
  spec: DirectionSpec,
  dy: tf.Tensor3D,
  saved: tf.Tensor[],
  masked: boolean,
  order: number[],
): tf.Tensor[] {
  const [x, wihT, whhT] = saved as [tf.Tensor3D, tf.Tensor2D, tf.Tensor2D];
  const mask = masked ? saved[3] : null;
  const [fwd, h0, c0] = saved.slice(masked ? 4 : 3) as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
  const [T, B, I] = x.shape;
  const H = spec.hiddenSize;
  const rows: tf.Tensor2D[] = new Array<tf.Tensor2D>(T);
  const whhI = interleaveGates(whhT, H);
  let prev: tf.Tensor2D | null = null;
  for (const t of [...order].reverse()) {
    rows[t] = wgslBackward(spec, { t, reverse: spec.reverse }, { dy, fwd, whhI, c0, mask }, prev);
    prev = rows[t];
  }
  const pack = backwardPack(masked);
  const last = prev!;
  const block = (k: number, width = 1) => tf.slice(last, [0, k * H], [B, width * H]);
  // dh0 = dz_first W_hh (+ what the mask kept of dh); dc0 is the last row's dcPrev.
  const dzW = tf.matMul(block(pack.dz, 4), whhT, false, true);
  const dh = masked ? tf.add(dzW, block(pack.keep)) : dzW;
  const dc = block(pack.dc);
  const dZ = tf.slice(tf.concat(rows, 0), [0, 0], [T * B, 4 * H]); // rows in time order
  const hPrev = previousH(fwd, h0, { T, B, H, reverse: spec.reverse, width: forwardPack(true, masked).width * H });
  const dX = tf.reshape(tf.matMul(dZ, wihT, false, true), [T, B, I]);
  const dWihT = tf.matMul(tf.reshape(x, [T * B, I]), dZ, true, false);
  const dWhhT = tf.matMul(hPrev, dZ, true, false);
  const dBias = tf.sum(dZ, 0);
  return [dX, dh, dc, dWihT, dWhhT, dBias];
}

/**
 * W_hh^T [H, 4H] with the four gates of each column side by side: out[k, 4j + q] = whhT[k, qH + j], so
 * the kernels read the four weights of (k, j) as one vec4 (see wgsl-cell.ts).
 */
function interleaveGates(whhT: tf.Tensor2D, H: number): tf.Tensor2D {
  return tf.reshape(tf.transpose(tf.reshape(whhT, [H, 4, H]), [0, 2, 1]), [H, 4 * H]);
}

/** h before each step, [T*B, H] in time order: the carried h of the step before it, or h0. */
function previousH(
  fwd: tf.Tensor2D,
  h0: tf.Tensor2D,
  { T, B, H, reverse, width }: { T: number; B: number; H: number; reverse: boolean; width: number },
): tf.Tensor2D {
  if (T === 1) return h0;
  const hs = tf.slice(tf.reshape(fwd, [T, B, width]), [reverse ? 1 : 0, 0, 0], [T - 1, B, H]);
  const first = tf.reshape(h0, [1, B, H]);
  return tf.reshape(tf.concat(reverse ? [hs, first] : [first, hs], 0), [T * B, H]);
}
