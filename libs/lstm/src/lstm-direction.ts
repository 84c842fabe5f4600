import * as tf from '@tensorflow/tfjs-core';
import { ActivationSpec, activate, activationGrad, recurrentActivate, recurrentActivationGrad } from './activations';
import type { RecurrentActivation } from './config';
import { splitTime } from './time-split';

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

// Quantities kept from each step for the backward pass, in this order; gathered only while a gradient
// is being recorded, so inference pays nothing for them.
const PER_STEP = ['hPrev', 'cPrev', 'ifo', 'zg', 'g', 'c', 'a'] as const;
const N_PER_STEP = PER_STEP.length;

/** The tensors of one direction's loop; shapes in the comment at the top of this file. */
export interface DirectionInputs {
  x: tf.Tensor3D;
  h0: tf.Tensor2D;
  c0: tf.Tensor2D;
  wihT: tf.Tensor2D;
  whhT: tf.Tensor2D;
  bias: tf.Tensor1D;
  mask: tf.Tensor3D | null;
}

export function runDirection(spec: DirectionSpec, inputs: DirectionInputs): tf.Tensor3D {
  // Inside customGrad's forward the engine reports the tape as off, so ask here whether a gradient is
  // being recorded: only then are the per-step tensors gathered for the backward pass.
  const recording = isTapeOn();
  const fn = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    const [x, h0, c0, wihT, whhT, bias, m] = args.slice(0, -1) as tf.Tensor[];
    const { value, saved } = forwardLoop(
      spec,
      { x, h0, c0, wihT, whhT, bias, mask: m ?? null } as DirectionInputs,
      recording,
    );
    if (recording) save(saved);
    return {
      value,
      gradFunc: (dy: tf.Tensor, s: tf.Tensor[]) => {
        const grads = backwardLoop(spec, dy as tf.Tensor3D, s, m != null);
        return m != null ? [...grads, tf.zerosLike(m)] : grads;
      },
    };
  });
  const { x, h0, c0, wihT, whhT, bias, mask } = inputs;
  // customGrad takes positional tensors; the mask (no gradient) only when there is one.
  return fn(...[x, h0, c0, wihT, whhT, bias, ...(mask ? [mask] : [])]) as tf.Tensor3D;
}

/** tfjs's engine keeps this private; a gradient is being recorded while gradientDepth > 0. */
function isTapeOn(): boolean {
  const state = (tf.engine() as unknown as { state?: { gradientDepth?: number; kernelDepth?: number } }).state;
  // Unknown engine internals: assume recording, which is always correct (only slower for inference).
  if (!state || typeof state.gradientDepth !== 'number') return true;
  return state.gradientDepth > 0 && state.kernelDepth === 0;
}

function stepOrder(T: number, reverse: boolean): number[] {
  return Array.from({ length: T }, (_, k) => (reverse ? T - 1 - k : k));
}

/** [rows, k] x [k, n] with no transpose flags (wasm's XNNPACK path misses them, ~7x slower). */
function matMulT(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  return tf.matMul(tf.transpose(a), b);
}

function forwardLoop(
  spec: DirectionSpec,
  { x, h0, c0, wihT, whhT, bias, mask }: DirectionInputs,
  recording: boolean,
): { value: tf.Tensor3D; saved: tf.Tensor[] } {
  const [T, B, I] = x.shape;
  const H = spec.hiddenSize;
  // One large product for the input projection of every step; the loop adds only h W_hh^T.
  const xp = tf.reshape(tf.add(tf.matMul(tf.reshape(x, [T * B, I]), wihT), bias), [T, B, 4 * H]);
  const xpSteps = splitTime(xp);
  const masks = mask ? splitTime(mask) : null;
  // Per-step tensors by time index t (not step order), PER_STEP[k] at t * N_PER_STEP + k.
  const perStep: tf.Tensor[] = recording ? new Array(T * N_PER_STEP) : [];
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
    if (recording) perStep.splice(t * N_PER_STEP, N_PER_STEP, h, c, ifo, zg, g, cNew, a);
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
  // Concat along rows then one reshape: tf.stack would launch a reshape per step.
  const value = tf.reshape(tf.concat([...outs, h, c], 0), [T + 2, B, H]) as tf.Tensor3D;
  // Saved layout: [x, wihT, whhT, mask?, then each PER_STEP quantity stacked over time as [T, B, .]].
  // One stacked tensor per quantity: saving per-step tensors would clone (a kernel each) per step.
  const stacked = recording
    ? PER_STEP.map((_, k) => {
        const steps = Array.from({ length: T }, (_, t) => perStep[t * N_PER_STEP + k]);
        return tf.reshape(tf.concat(steps, 0), [T, B, steps[0].shape[1]!]);
      })
    : [];
  const saved = [x, wihT, whhT, ...(mask ? [mask] : []), ...stacked];
  return { value, saved };
}

/**
 * Backward through time. Everything that does not depend on the recursion is computed for all steps
 * at once before the loop (activation derivatives and their products with the saved gate values), so
 * each step runs only: dh += dy_t; dc += dh * K1_t; dz = [dc, dc, dh, dc] * P_t; dh = dz W_hh;
 * dc *= f_t  (7 kernels, plus 4 with a mask).
 */
function backwardLoop(spec: DirectionSpec, dy: tf.Tensor3D, saved: tf.Tensor[], masked: boolean): tf.Tensor[] {
  const [x, wihT, whhT] = saved as [tf.Tensor3D, tf.Tensor2D, tf.Tensor2D];
  const mask = masked ? (saved[3] as tf.Tensor3D) : null;
  const base = masked ? 4 : 3;
  const [T, B, I] = x.shape;
  const H = spec.hiddenSize;
  const [HPrev, CPrev, IFO, ZG, G, C, A] = saved.slice(base, base + N_PER_STEP) as tf.Tensor3D[];
  // Per-step coefficients, for all steps at once ([T, B, .]).
  const dIfo = recurrentActivationGrad(spec.recurrentActivation, IFO);
  const [Ig, Fg, Og] = tf.split(IFO, 3, 2);
  const dA = activationGrad(spec.activation, C, A);
  const K1 = dA ? tf.mul(Og, dA) : Og; // d h / d c through h = o * act(c)
  const dG = activationGrad(spec.activation, ZG, G);
  // dz = [dc * g, dc * c_prev, dh * a, dc * i * act'(zg)] * [rec'(i), rec'(f), rec'(o), 1]
  const P = tf.mul(tf.concat([G, CPrev, A, dG ? tf.mul(Ig, dG) : Ig], 2), tf.concat([dIfo, tf.onesLike(G)], 2));
  const [Ps, K1s, Fs, dys] = [splitTime(P), splitTime(K1), splitTime(Fg), splitTime(dy)];
  const masks = mask ? splitTime(mask) : null;
  const whh = tf.transpose(whhT); // [4H, H]: dz W_hh with no transpose flag
  let dh: tf.Tensor = dys[T];
  let dc: tf.Tensor = dys[T + 1];
  const dzs: tf.Tensor[] = new Array(T);
  for (const t of stepOrder(T, spec.reverse).reverse()) {
    const m = masks ? masks[t] : null;
    // h_t = m*hNew + (1-m)*hPrev and out_t = m*hNew, so hNew receives m*(dh + dOut).
    let dhNew = tf.add(dh, dys[t]);
    if (m) dhNew = tf.mul(dhNew, m);
    const dcNew = tf.add(m ? tf.mul(dc, m) : dc, tf.mul(dhNew, K1s[t]));
    const dz = tf.mul(tf.concat([dcNew, dcNew, dhNew, dcNew], 1), Ps[t]);
    dzs[t] = dz;
    let dhPrev = tf.matMul(dz, whh);
    let dcPrev = tf.mul(dcNew, Fs[t]);
    if (m) {
      const keep = tf.sub(1, m);
      dhPrev = tf.add(dhPrev, tf.mul(dh, keep));
      dcPrev = tf.add(dcPrev, tf.mul(dc, keep));
    }
    dh = dhPrev;
    dc = dcPrev;
  }
  // The parameter and input gradients: one large product each over all T*B rows.
  const dZ = tf.concat(dzs, 0) as tf.Tensor2D; // [T*B, 4H], rows in time order
  const dX = tf.reshape(tf.matMul(dZ, tf.transpose(wihT)), [T, B, I]);
  const dWihT = matMulT(tf.reshape(x, [T * B, I]) as tf.Tensor2D, dZ);
  const dWhhT = matMulT(tf.reshape(HPrev, [T * B, H]) as tf.Tensor2D, dZ);
  // A sum over rows as a product with ones: sum over axis 0 is the slow reduction on wasm.
  const dBias = tf.reshape(tf.matMul(tf.ones([1, T * B]), dZ), [4 * H]);
  return [dX, dh, dc, dWihT, dWhhT, dBias];
}
