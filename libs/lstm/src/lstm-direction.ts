import * as tf from '@tensorflow/tfjs-core';
import { ActivationSpec, activate, activationGrad, recurrentActivate, recurrentActivationGrad } from './activations';
import type { RecurrentActivation } from './config';
import { FUSED_GATE_ORDER, cellBackward, cellForward } from './fused-cell';
import type { LstmKernelPath } from './kernel-path';
import { WGSL_BACKENDS } from './wgsl-cell';
import { wgslBackwardLoop, wgslForwardLoop } from './wgsl-direction';

/**
 * The time loop of one layer in one direction, with a hand-written backward pass through time.
 *
 * Shapes (time-major, as inside cuDNN and haste):
 *   x     [T, B, I]      input sequence
 *   h0,c0 [B, H]         initial state
 *   wihT  [I, 4H]        input weights, transposed, gate columns in the loop's order (gateOrder below)
 *   whhT  [H, 4H]        recurrent weights, transposed, same column order
 *   bias  [4H]           b_ih + b_hh in the same order
 *   mask  [T, B, 1]      optional: 1 where t < length of sequence b, else 0
 * Returns one tensor [T + 2, B, H]: rows 0..T-1 the outputs, row T the final h, row T+1 the final c.
 * (tf.customGrad returns a single tensor, so the three results travel packed.)
 *
 * The generic loop takes its gate columns in the order (i, f, o, g), which puts the three sigmoid gates
 * side by side, so each step needs one split and one activation call for them; the fused loop takes
 * PyTorch's (i, f, g, o) as it is (its kernels index the columns). Callers permute the weights for
 * the generic loop outside this function with ordinary differentiable ops, so gradients reach the
 * parameters in their layout.
 *
 * Forward: the input projection for all steps is one [T*B, I] x [I, 4H] product before the loop; each
 * step runs the recurrent product and the gate math only. Backward: each step computes only dz and
 * dz @ W_hh; dW_ih, dW_hh, db and dx are each one large product (or sum) over all T*B rows after the
 * loop.
 *
 * Two loops compute the same math (kernel-path.ts picks one): the generic loop of tfjs ops, which runs
 * on every backend (10 kernels per step forward, 6 more backward, without a mask), and on cpu and wasm
 * the fused loop, where each step is tfjs's matrix product plus ONE library kernel for the gate math
 * (fused-cell.ts). On webgpu the fused loop is wgsl-direction.ts: one WGSL dispatch per step, the
 * recurrent product included.
 *
 * With a mask, a step past a sequence's length carries the state through unchanged and outputs zeros,
 * which is what PyTorch's packed sequences give (the reverse direction then starts at each sequence's
 * last valid step).
 */
export interface DirectionSpec {
  /** The loop to run (kernel-path.ts); chosen once per forward pass, so its backward pass matches. */
  path: LstmKernelPath;
  hiddenSize: number;
  reverse: boolean;
  activation: ActivationSpec;
  recurrentActivation: RecurrentActivation;
}

// Quantities kept from each step for the backward pass, in this order, per loop; gathered only while a
// gradient is being recorded, so inference pays nothing for them. The fused backward kernel recomputes
// g = act(zg) and a = act(c), so its forward keeps two fewer (less to stack and to save).
const PER_STEP = {
  generic: ['hPrev', 'cPrev', 'ifo', 'zg', 'g', 'c', 'a'],
  fused: ['hPrev', 'cPrev', 'ifo', 'zg', 'c'],
} as const;

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
  // The fused loop on webgpu is its own (wgsl-direction.ts): one dispatch per step, packed rows.
  const wgsl = spec.path === 'fused' && (WGSL_BACKENDS as readonly string[]).includes(tf.getBackend());
  const fn = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    const [x, h0, c0, wihT, whhT, bias, m] = args.slice(0, -1) as tf.Tensor[];
    const inputs = { x, h0, c0, wihT, whhT, bias, mask: m ?? null } as DirectionInputs;
    const order = stepOrder(x.shape[0], spec.reverse);
    const { value, saved } = wgsl
      ? wgslForwardLoop(spec, inputs, recording, order)
      : forwardLoop(spec, inputs, recording);
    if (recording) save(saved);
    return {
      value,
      gradFunc: (dy: tf.Tensor, s: tf.Tensor[]) => {
        const grads = wgsl
          ? wgslBackwardLoop(spec, dy as tf.Tensor3D, s, m != null, order)
          : backwardLoop(spec, dy as tf.Tensor3D, s, m != null);
        return m != null ? [...grads, tf.zerosLike(m)] : grads;
      },
    };
  });
  const { x, h0, c0, wihT, whhT, bias, mask } = inputs;
  // customGrad takes positional tensors; the mask (no gradient) only when there is one.
  return fn(...[x, h0, c0, wihT, whhT, bias, ...(mask ? [mask] : [])]);
}

/** tfjs's engine keeps this private; a gradient is being recorded while gradientDepth > 0. */
function isTapeOn(): boolean {
  const state = (tf.engine() as unknown as { state?: { gradientDepth?: number; kernelDepth?: number } }).state;
  // Unknown engine internals: assume recording, which is always correct (only slower for inference).
  if (!state || typeof state.gradientDepth !== 'number') return true;
  return state.gradientDepth > 0 && state.kernelDepth === 0;
}

/** Gate column order each loop takes its weights in: 'ifog' = (i, f, o, g), 'ifgo' = PyTorch's. */
export function gateOrder(path: LstmKernelPath): 'ifog' | 'ifgo' {
  return path === 'fused' ? FUSED_GATE_ORDER : 'ifog';
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
  const path = spec.path;
  // One large product for the input projection of every step; the loop adds only h W_hh^T.
  const xp = tf.reshape(tf.add(tf.matMul(tf.reshape(x, [T * B, I]), wihT), bias), [T, B, 4 * H]) as tf.Tensor3D;
  const stepper =
    path === 'fused' ? fusedForwardStep(spec, xp, whhT, mask, recording) : genericForwardStep(spec, xp, whhT, mask);
  // Per-step tensors by time index t (not step order): the PER_STEP[path] quantities of step t.
  const perStep: tf.Tensor[][] = recording ? new Array<tf.Tensor[]>(T) : [];
  const outs: tf.Tensor[] = new Array<tf.Tensor>(T);
  let h: tf.Tensor = stepper.lift(h0);
  let c: tf.Tensor = stepper.lift(c0);
  for (const t of stepOrder(T, spec.reverse)) {
    const s = stepper.step(t, h, c);
    if (recording) perStep[t] = [h, c, ...s.keep!];
    outs[t] = s.out;
    h = s.h;
    c = s.c;
  }
  // Concat along rows then one reshape: tf.stack would launch a reshape per step.
  const value = tf.reshape(tf.concat([...outs, h, c], 0), [T + 2, B, H]) as tf.Tensor3D;
  // Saved layout: [x, wihT, whhT, mask?, then each PER_STEP[path] quantity stacked over time as
  // [T, B, .]]. One stacked tensor per quantity: saving per-step tensors would clone (a kernel each) per step.
  const stacked = recording
    ? PER_STEP[path].map((_, k) => {
        const steps = perStep.map((step) => step[k]);
        return tf.reshape(tf.concat(steps, 0), [T, B, steps[0].shape[steps[0].rank - 1]]);
      })
    : [];
  const saved = [x, wihT, whhT, ...(mask ? [mask] : []), ...stacked];
  return { value, saved };
}

/**
 * One forward step: the output row, the carried state, and (when recording) what backward needs: the
 * PER_STEP[path] quantities after hPrev and cPrev.
 */
interface StepResult {
  out: tf.Tensor;
  h: tf.Tensor;
  c: tf.Tensor;
  keep?: tf.Tensor[];
}
interface ForwardStep {
  /** The loop's representation of the initial h or c ([B, H]). */
  lift(state: tf.Tensor2D): tf.Tensor;
  step(t: number, h: tf.Tensor, c: tf.Tensor): StepResult;
}

/**
 * The generic step: 10 kernels without a mask (fused product, split, sigmoid, activation, split, 2 mul,
 * add, activation, mul). Every per-step tensor is 3-D [1, B, .], which _FusedMatMul takes as it is
 * (a 2-D operand would cost the op's reshapes, three more kernels per step).
 */
function genericForwardStep(
  spec: DirectionSpec,
  xp: tf.Tensor3D,
  whhT: tf.Tensor2D,
  mask: tf.Tensor3D | null,
): ForwardStep {
  const H = spec.hiddenSize;
  const [T, B] = xp.shape;
  const xpSteps = tf.unstack(tf.reshape(xp, [T, 1, B, 4 * H]));
  const masks = mask ? tf.unstack(tf.reshape(mask, [T, 1, B, 1])) : null;
  const w = tf.reshape(whhT, [1, H, 4 * H]);
  const recurrent = plusProduct();
  const lift = (state: tf.Tensor2D) => tf.reshape(state, [1, B, H]);
  const step = (t: number, h: tf.Tensor, c: tf.Tensor): StepResult => {
    const z = recurrent(h, w, xpSteps[t]);
    const [zifo, zg] = tf.split(z, [3 * H, H], 2);
    const ifo = recurrentActivate(spec.recurrentActivation, zifo);
    const g = activate(spec.activation, zg);
    const [i, f, o] = tf.split(ifo, 3, 2);
    const cNew = tf.add(tf.mul(f, c), tf.mul(i, g));
    const a = activate(spec.activation, cNew);
    const hNew = tf.mul(o, a);
    const keep = [ifo, zg, g, cNew, a];
    if (!masks) return { out: hNew, h: hNew, c: cNew, keep };
    const m = masks[t];
    return {
      out: tf.mul(hNew, m),
      h: tf.add(h, tf.mul(m, tf.sub(hNew, h))),
      c: tf.add(c, tf.mul(m, tf.sub(cNew, c))),
      keep,
    };
  };
  return { lift, step };
}

function fusedForwardStep(
  spec: DirectionSpec,
  xp: tf.Tensor3D,
  whhT: tf.Tensor2D,
  mask: tf.Tensor3D | null,
  recording: boolean,
): ForwardStep {
  const lift = (state: tf.Tensor2D) => state;
  const step = (t: number, h: tf.Tensor, c: tf.Tensor): StepResult => {
    const r = tf.matMul(h, whhT);
    const outs = cellForward(spec, t, { xp, r, h, c, mask }, recording);
    const [hN, cN] = outs;
    const out = mask ? outs[2] : hN;
    if (!recording) return { out, h: hN, c: cN };
    const [ifo, zg, cNew] = outs.slice(mask ? 3 : 2);
    return { out, h: hN, c: cN, keep: [ifo, zg, cNew ?? cN] };
  };
  return { lift, step };
}

/**
 * a @ b + addend for 3-D a, b ([1, m, k], [1, k, n]) and addend [1, m, n]: one _FusedMatMul kernel where
 * the backend's fused product is one kernel and takes a full-shape bias (cpu, webgl, webgpu). Called
 * as a kernel, not through tf.fused.matMul, whose gradient wrapper and reshapes would add kernels (no
 * gradient is needed inside customGrad). wasm's fused product takes only a bias vector, and tfjs-node's
 * is itself a matMul and an add, so those two get the plain product and add.
 */
function plusProduct(): (a: tf.Tensor, b: tf.Tensor, addend: tf.Tensor) => tf.Tensor {
  const backend = tf.getBackend();
  if (backend === 'wasm' || backend === 'tensorflow') return (a, b, addend) => tf.add(addend, tf.matMul(a, b));
  const attrs = { transposeA: false, transposeB: false, activation: 'linear' };
  return (a, b, addend) => tf.engine().runKernel('_FusedMatMul', { a, b, bias: addend }, attrs) as tf.Tensor;
}

/**
 * Backward through time: dz for each step in the recursion, then dW_ih, dW_hh, db and dx as one large
 * product each over all T*B rows.
 */
function backwardLoop(spec: DirectionSpec, dy: tf.Tensor3D, saved: tf.Tensor[], masked: boolean): tf.Tensor[] {
  const [x, wihT, whhT] = saved as [tf.Tensor3D, tf.Tensor2D, tf.Tensor2D];
  const mask = masked ? (saved[3] as tf.Tensor3D) : null;
  const base = masked ? 4 : 3;
  const [T, B, I] = x.shape;
  const H = spec.hiddenSize;
  const perStep = saved.slice(base) as tf.Tensor3D[];
  const whh = tf.transpose(whhT); // [4H, H]: dz W_hh with no transpose flag
  const run = spec.path === 'fused' ? fusedBackward : genericBackward;
  const { dzs, dh, dc } = run(spec, dy, perStep, mask, whh);
  // The parameter and input gradients: one large product each over all T*B rows.
  const dZ = tf.reshape(tf.concat(dzs, 0), [T * B, 4 * H]) as tf.Tensor2D; // rows in time order
  const dX = tf.reshape(tf.matMul(dZ, tf.transpose(wihT)), [T, B, I]);
  const dWihT = matMulT(tf.reshape(x, [T * B, I]) as tf.Tensor2D, dZ);
  const dWhhT = matMulT(tf.reshape(perStep[0], [T * B, H]) as tf.Tensor2D, dZ);
  // A sum over rows as a product with ones: sum over axis 0 is the slow reduction on wasm.
  const dBias = tf.reshape(tf.matMul(tf.ones([1, T * B]), dZ), [4 * H]);
  return [dX, dh, dc, dWihT, dWhhT, dBias];
}

interface BackwardResult {
  /** dL/dz per step, by time index, each [B, 4H] (fused loop) or [1, B, 4H] (generic loop). */
  dzs: tf.Tensor[];
  /** dL/dh0 and dL/dc0. */
  dh: tf.Tensor;
  dc: tf.Tensor;
}

/**
 * The generic recursion. Everything that does not depend on it is computed for all steps at once
 * before the loop (activation derivatives and their products with the saved gate values), so each
 * step runs only: dc = dc + dhNew * K1_t; dz = [dc, dc, dhNew, dc] * P_t; dc *= f_t; and
 * dhNew_{t-1} = dz W_hh + dy_{t-1} as one fused product (6 kernels; a mask adds a few).
 */
function genericBackward(
  spec: DirectionSpec,
  dy: tf.Tensor3D,
  perStep: tf.Tensor3D[],
  mask: tf.Tensor3D | null,
  whh: tf.Tensor2D,
): BackwardResult {
  const [, CPrev, IFO, ZG, G, C, A] = perStep;
  const T = C.shape[0];
  // Per-step coefficients, for all steps at once ([T, B, .]).
  const dIfo = recurrentActivationGrad(spec.recurrentActivation, IFO);
  const [Ig, Fg, Og] = tf.split(IFO, 3, 2);
  const dA = activationGrad(spec.activation, C, A);
  const K1 = dA ? tf.mul(Og, dA) : Og; // d h / d c through h = o * act(c)
  const dG = activationGrad(spec.activation, ZG, G);
  // dz = [dc * g, dc * c_prev, dh * a, dc * i * act'(zg)] * [rec'(i), rec'(f), rec'(o), 1]
  const P = tf.mul(tf.concat([G, CPrev, A, dG ? tf.mul(Ig, dG) : Ig], 2), tf.concat([dIfo, tf.onesLike(G)], 2));
  // Per-step slices as [1, B, .] (see genericForwardStep), and W_hh as [1, 4H, H].
  const steps = (x: tf.Tensor) => tf.unstack(tf.reshape(x, [x.shape[0], 1, ...x.shape.slice(1)]));
  const [Ps, K1s, Fs, dys] = [steps(P), steps(K1), steps(Fg), steps(dy)];
  const masks = mask ? steps(mask) : null;
  const w = tf.reshape(whh, [1, ...whh.shape]);
  const plus = plusProduct();
  const order = stepOrder(T, spec.reverse).reverse();
  const dzs: tf.Tensor[] = new Array<tf.Tensor>(T);
  // dh: gradient reaching h_t from later steps (and hN); dhNew adds the output's own gradient dy_t.
  let dh: tf.Tensor = dys[T];
  let dhNew: tf.Tensor = tf.add(dh, dys[order[0]]);
  let dc: tf.Tensor = dys[T + 1];
  order.forEach((t, k) => {
    const m = masks ? masks[t] : null;
    // h_t = m*hNew + (1-m)*hPrev and out_t = m*hNew, so hNew receives m*(dh + dOut).
    if (m) dhNew = tf.mul(dhNew, m);
    const dcNew = tf.add(m ? tf.mul(dc, m) : dc, tf.mul(dhNew, K1s[t]));
    const dz = tf.mul(tf.concat([dcNew, dcNew, dhNew, dcNew], 2), Ps[t]);
    dzs[t] = dz;
    let dcPrev = tf.mul(dcNew, Fs[t]);
    const next = order[k + 1];
    if (m) {
      const keep = tf.sub(1, m);
      dh = tf.add(tf.matMul(dz, w), tf.mul(dh, keep));
      dcPrev = tf.add(dcPrev, tf.mul(dc, keep));
      if (next !== undefined) dhNew = tf.add(dh, dys[next]);
    } else if (next !== undefined) {
      dhNew = plus(dz, w, dys[next]);
    } else {
      dh = tf.matMul(dz, w);
    }
    dc = dcPrev;
  });
  const [B, H] = dh.shape.slice(1);
  return { dzs, dh: tf.reshape(dh, [B, H]), dc: tf.reshape(dc, [B, H]) };
}

/** The fused recursion: per step one library kernel for dz and dc, and the product dz W_hh. */
function fusedBackward(
  spec: DirectionSpec,
  dy: tf.Tensor3D,
  perStep: tf.Tensor3D[],
  mask: tf.Tensor3D | null,
  whh: tf.Tensor2D,
): BackwardResult {
  const [, CPrev, IFO, ZG, C] = perStep;
  const T = C.shape[0];
  const saved = { dy, IFO, ZG, CPrev, C, mask };
  const dzs: tf.Tensor[] = new Array<tf.Tensor>(T);
  let prev: { dzW: tf.Tensor; keep: tf.Tensor | null; dc: tf.Tensor } | null = null;
  for (const t of stepOrder(T, spec.reverse).reverse()) {
    const [dz, dc, keep] = cellBackward(spec, t, saved, prev);
    dzs[t] = dz;
    prev = { dzW: tf.matMul(dz, whh), keep: keep ?? null, dc };
  }
  const last = prev!;
  return { dzs, dh: last.keep ? tf.add(last.dzW, last.keep) : last.dzW, dc: last.dc };
}
