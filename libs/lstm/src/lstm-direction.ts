import * as tf from '@tensorflow/tfjs-core';
import { ActivationSpec, activate, activationGrad, recurrentActivate, recurrentActivationGrad } from './activations';
import type { RecurrentActivation } from './config';

/**
 * The time loop of one layer in one direction, with a hand-written backward pass through time.
 *
 * Shapes (time-major, as inside cuDNN and haste):
 *   x     [T, B, I]      input sequence
 *   h0,c0 [B, H]         initial state
 *   wihT  [I, 4H]        input weights, transposed, gate columns in the INTERNAL order (i, f, o, g)
 *   whhT  [H, 4H]        recurrent weights, transposed, same column order
 *   bias  [4H]           b_ih + b_hh in the internal order
 *   mask  [T, B, 1]      optional: 1 where t < length of sequence b, else 0
 * Returns one tensor [T + 2, B, H]: rows 0..T-1 the outputs, row T the final h, row T+1 the final c.
 * (tf.customGrad returns a single tensor, so the three results travel packed.)
 *
 * The internal column order (i, f, o, g) puts the three sigmoid gates side by side, so each step needs
 * one split and one activation call for them. Callers permute PyTorch's (i, f, g, o) weights outside
 * this function with ordinary differentiable ops, so gradients reach the parameters in their layout.
 *
 * Forward: the input projection for all steps is one [T*B, I] x [I, 4H] product before the loop; each
 * step runs the recurrent product and the gate math only. Backward: each step computes only dz and
 * dz @ W_hh; dW_ih, dW_hh, db and dx are each one large product (or sum) over all T*B rows after the
 * loop. With a mask, a step past a sequence's length carries the state through unchanged and outputs
 * zeros, which is what PyTorch's packed sequences give (the reverse direction then starts at each
 * sequence's last valid step).
 */
export interface DirectionSpec {
  hiddenSize: number;
  reverse: boolean;
  activation: ActivationSpec;
  recurrentActivation: RecurrentActivation;
}

// Tensors saved per step for the backward pass, in this order.
const PER_STEP = ['hPrev', 'cPrev', 'ifo', 'zg', 'g', 'c', 'a'] as const;
const N_PER_STEP = PER_STEP.length;

export function runDirection(
  spec: DirectionSpec,
  x: tf.Tensor3D,
  h0: tf.Tensor2D,
  c0: tf.Tensor2D,
  wihT: tf.Tensor2D,
  whhT: tf.Tensor2D,
  bias: tf.Tensor1D,
  mask: tf.Tensor3D | null,
): tf.Tensor3D {
  const fn = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    const [xs, h0s, c0s, wih, whh, b, m] = args.slice(0, -1) as tf.Tensor[];
    const { value, saved } = forwardLoop(spec, xs as tf.Tensor3D, h0s as tf.Tensor2D, c0s as tf.Tensor2D, wih as tf.Tensor2D, whh as tf.Tensor2D, b as tf.Tensor1D, (m ?? null) as tf.Tensor3D | null);
    save(saved);
    return {
      value,
      gradFunc: (dy: tf.Tensor, s: tf.Tensor[]) => {
        const grads = backwardLoop(spec, dy as tf.Tensor3D, s, m != null);
        return m != null ? [...grads, tf.zerosLike(m)] : grads;
      },
    };
  });
  const inputs: tf.Tensor[] = [x, h0, c0, wihT, whhT, bias];
  if (mask) inputs.push(mask);
  return fn(...inputs) as tf.Tensor3D;
}

function stepOrder(T: number, reverse: boolean): number[] {
  return Array.from({ length: T }, (_, k) => (reverse ? T - 1 - k : k));
}

function forwardLoop(
  spec: DirectionSpec,
  x: tf.Tensor3D,
  h0: tf.Tensor2D,
  c0: tf.Tensor2D,
  wihT: tf.Tensor2D,
  whhT: tf.Tensor2D,
  bias: tf.Tensor1D,
  mask: tf.Tensor3D | null,
): { value: tf.Tensor3D; saved: tf.Tensor[] } {
  const [T, B, I] = x.shape;
  const H = spec.hiddenSize;
  const xp = tf.reshape(tf.add(tf.matMul(tf.reshape(x, [T * B, I]), wihT), bias), [T, B, 4 * H]);
  const xpSteps = tf.unstack(xp);
  const masks = mask ? tf.unstack(mask) : null;
  // Saved layout: [x, wihT, whhT, mask?] then PER_STEP tensors for each time index t (not step order).
  const perStep: tf.Tensor[] = new Array(T * N_PER_STEP);
  const outs: tf.Tensor[] = new Array(T);
  let h: tf.Tensor = h0;
  let c: tf.Tensor = c0;
  for (const t of stepOrder(T, spec.reverse)) {
    const z = tf.add(xpSteps[t], tf.matMul(h, whhT));
    const [zifo, zg] = tf.split(z, [3 * H, H], 1);
    const ifo = recurrentActivate(spec.recurrentActivation, zifo);
    const g = activate(spec.activation, zg);
    const [i, f, o] = tf.split(ifo, 3, 1);
    const cNew = tf.add(tf.mul(f, c), tf.mul(i, g));
    const a = activate(spec.activation, cNew);
    const hNew = tf.mul(o, a);
    perStep.splice(t * N_PER_STEP, N_PER_STEP, h, c, ifo, zg, g, cNew, a);
    if (masks) {
      const m = masks[t];
      outs[t] = tf.mul(hNew, m);
      h = tf.add(h, tf.mul(m, tf.sub(hNew, h)));
      c = tf.add(c, tf.mul(m, tf.sub(cNew, c)));
    } else {
      outs[t] = hNew;
      h = hNew;
      c = cNew;
    }
  }
  const value = tf.concat([tf.stack(outs), tf.expandDims(h, 0), tf.expandDims(c, 0)], 0) as tf.Tensor3D;
  const saved = [x, wihT, whhT, ...(mask ? [mask] : []), ...perStep];
  return { value, saved };
}

function backwardLoop(spec: DirectionSpec, dy: tf.Tensor3D, saved: tf.Tensor[], masked: boolean): tf.Tensor[] {
  const [x, wihT, whhT] = saved as [tf.Tensor3D, tf.Tensor2D, tf.Tensor2D];
  const mask = masked ? (saved[3] as tf.Tensor3D) : null;
  const base = masked ? 4 : 3;
  const [T, B, I] = x.shape;
  const H = spec.hiddenSize;
  const dyRows = tf.unstack(dy);
  const masks = mask ? tf.unstack(mask) : null;
  const whh = tf.transpose(whhT); // [4H, H]: dz @ W_hh without transpose flags (slow path on wasm)
  let dh: tf.Tensor = dyRows[T];
  let dc: tf.Tensor = dyRows[T + 1];
  const dzs: tf.Tensor[] = new Array(T);
  const hPrevs: tf.Tensor[] = new Array(T);
  for (const t of stepOrder(T, spec.reverse).reverse()) {
    const [hPrev, cPrev, ifo, zg, g, c, a] = saved.slice(base + t * N_PER_STEP, base + (t + 1) * N_PER_STEP);
    hPrevs[t] = hPrev;
    const m = masks ? masks[t] : null;
    // h_t = m*hNew + (1-m)*hPrev and out_t = m*hNew, so hNew receives m*(dh + dOut).
    let dhNew = tf.add(dh, dyRows[t]);
    if (m) dhNew = tf.mul(dhNew, m);
    const [i, f, o] = tf.split(ifo, 3, 1);
    const dA = activationGrad(spec.activation, c, a);
    const dhO = tf.mul(dhNew, o);
    let dcNew = tf.add(m ? tf.mul(dc, m) : dc, dA ? tf.mul(dhO, dA) : dhO);
    const dzIfo = tf.mul(
      tf.concat([tf.mul(dcNew, g), tf.mul(dcNew, cPrev), tf.mul(dhNew, a)], 1),
      recurrentActivationGrad(spec.recurrentActivation, ifo),
    );
    const dG = activationGrad(spec.activation, zg, g);
    const dzg = dG ? tf.mul(tf.mul(dcNew, i), dG) : tf.mul(dcNew, i);
    const dz = tf.concat([dzIfo, dzg], 1);
    dzs[t] = dz;
    let dhPrev = tf.matMul(dz, whh);
    let dcPrev = tf.mul(dcNew, f);
    if (m) {
      const keep = tf.sub(1, m);
      dhPrev = tf.add(dhPrev, tf.mul(dh, keep));
      dcPrev = tf.add(dcPrev, tf.mul(dc, keep));
    }
    dcNew = dcPrev;
    dh = dhPrev;
    dc = dcNew;
  }
  const dZ = tf.reshape(tf.stack(dzs), [T * B, 4 * H]);
  const dX = tf.reshape(tf.matMul(dZ, tf.transpose(wihT)), [T, B, I]);
  const dWihT = tf.matMul(tf.reshape(x, [T * B, I]), dZ, true, false);
  const dWhhT = tf.matMul(tf.reshape(tf.stack(hPrevs), [T * B, H]), dZ, true, false);
  const dBias = tf.sum(dZ, 0);
  return [dX, dh, dc, dWihT, dWhhT, dBias];
}
