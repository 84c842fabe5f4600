import * as tf from '@tensorflow/tfjs-core';
import type { ActivationSpec } from './activations';
import type { Activation, RecurrentActivation } from './config';

/**
 * Library-owned kernels for the cpu and wasm backends: the per-step gate math of the LSTM, forward and
 * backward, each as ONE kernel (a plain loop over the step's B x H cells) instead of about ten tfjs ops.
 *
 * Why: on these backends a kernel launch costs 7-12 us, and tfjs 4.22's cpu SplitV copies a
 * non-contiguous slice element by element (~0.4 us/element), while wasm's Slice/SplitV first copies the
 * whole input out of the wasm heap. The matrix products stay tfjs's (XNNPACK on wasm).
 *
 * The kernels read step `t` straight out of the whole [T, B, .] tensors (no per-step slicing) and are
 * registered under their own names for 'cpu' and 'wasm' only; every other backend runs the generic-ops
 * loop in lstm-direction.ts, which the tests also run on cpu. The math is the generic loop's, element
 * by element (same formulas, same derivative conventions; see activations.ts).
 *
 * Layouts (shapes as in lstm-direction.ts). Gate columns of xp, r and dz are in PyTorch's order
 * (i, f, g, o), so the fused loop needs no permutation of the weights; ifo holds the three sigmoid
 * gates in the order i, f, o.
 *   forward  inputs  xp [T,B,4H] (x W_ih^T + b), r [B,4H] (h W_hh^T), h [B,H], c [B,H], mask? [T,B,1]
 *            outputs h', c', then out_t (masked only), then when recording: ifo [B,3H], zg [B,H], and
 *            cNew [B,H] (masked only; unmasked cNew is c').
 *   backward inputs  dy [T+2,B,H], saved IFO [T,B,3H], ZG, CPrev, C [T,B,H], mask?, and from the
 *            previous step dzW = dz_{t+1} W_hh [B,H], keep [B,H] (masked only), dc [B,H]; on the first
 *            backward step (t = last) dh and dc come from dy rows T and T+1 instead.
 *            outputs dz [B,4H], dc_prev [B,H], then keep' = dh*(1-m) (masked only).
 */
export const CELL_FORWARD = 'ReluLstmCellForward';
export const CELL_BACKWARD = 'ReluLstmCellBackward';
/** Gate column order of the fused loop's weights: PyTorch's. */
export const FUSED_GATE_ORDER = 'ifgo' as const;
export const FUSED_BACKENDS = ['cpu', 'wasm'] as const;

/**
 * The kernels' scalar activations, by number (a kernel attribute, and a cheap switch in the inner
 * loops). Every activation of ACTIVATIONS needs a code (`satisfies Record<Activation, ...>`), and every
 * code a case in `act` and `actGrad` (their `default` takes `never`), so a new activation does not
 * compile until the kernels compute it.
 */
export const ACT = { relu: 0, tanh: 1, clamp: 2, identity: 3 } as const;
export type ActCode = (typeof ACT)[keyof typeof ACT];
const ACT_CODES = {
  relu: ACT.relu,
  tanh: ACT.tanh,
  relu6: ACT.clamp,
  clippedRelu: ACT.clamp,
  linear: ACT.identity,
} as const satisfies Record<Activation, ActCode>;

/** Whether a gate activation is the hard sigmoid (the kernels know two). */
const HARD_SIGMOID = { sigmoid: false, hardSigmoid: true } as const satisfies Record<RecurrentActivation, boolean>;

export interface CellKinds {
  activation: ActivationSpec;
  recurrentActivation: RecurrentActivation;
}

/** Per-step forward; returns the kernel's outputs in the order documented above. */
export function cellForward(
  kinds: CellKinds,
  t: number,
  tensors: { xp: tf.Tensor; r: tf.Tensor; h: tf.Tensor; c: tf.Tensor; mask: tf.Tensor | null },
  recording: boolean,
): tf.Tensor[] {
  const inputs: tf.NamedTensorMap = { xp: tensors.xp, r: tensors.r, h: tensors.h, c: tensors.c };
  if (tensors.mask) inputs.mask = tensors.mask;
  const attrs = { t, recording, ...kindAttrs(kinds) };
  return tf.engine().runKernel(CELL_FORWARD, inputs, attrs) as tf.Tensor[];
}

/** Per-step backward; `prev` is null on the first backward step. Returns [dz, dcPrev, keep?]. */
export function cellBackward(
  kinds: CellKinds,
  t: number,
  saved: { dy: tf.Tensor; IFO: tf.Tensor; ZG: tf.Tensor; CPrev: tf.Tensor; C: tf.Tensor; mask: tf.Tensor | null },
  prev: { dzW: tf.Tensor; keep: tf.Tensor | null; dc: tf.Tensor } | null,
): tf.Tensor[] {
  const inputs: tf.NamedTensorMap = { ...saved } as tf.NamedTensorMap;
  if (!saved.mask) delete inputs.mask;
  if (prev) {
    inputs.dzW = prev.dzW;
    inputs.dc = prev.dc;
    if (prev.keep) inputs.keep = prev.keep;
  }
  const attrs = { t, ...kindAttrs(kinds) };
  return tf.engine().runKernel(CELL_BACKWARD, inputs, attrs) as tf.Tensor[];
}

function kindAttrs(kinds: CellKinds) {
  return {
    act: actCode(kinds.activation.kind),
    ceiling: kinds.activation.ceiling,
    hardSigmoid: isHardSigmoid(kinds.recurrentActivation),
  };
}

/** The kernels' code for an activation (the WGSL kernels of wgsl-cell.ts use the same codes). */
export function actCode(kind: Activation): ActCode {
  return ACT_CODES[kind];
}

export function isHardSigmoid(kind: RecurrentActivation): boolean {
  return HARD_SIGMOID[kind];
}

interface Attrs {
  t: number;
  recording?: boolean;
  act: ActCode;
  ceiling: number;
  hardSigmoid: boolean;
}

function act(code: ActCode, ceiling: number, z: number): number {
  switch (code) {
    case ACT.relu:
      return z > 0 ? z : 0;
    case ACT.tanh:
      return Math.tanh(z);
    case ACT.clamp:
      return z < 0 ? 0 : z > ceiling ? ceiling : z;
    case ACT.identity:
      return z;
    default:
      return unknownCode(code);
  }
}

/** d act / dz from the pre-activation z and output y, as activationGrad in activations.ts. */
function actGrad(code: ActCode, ceiling: number, z: number, y: number): number {
  switch (code) {
    case ACT.relu:
      return z > 0 ? 1 : 0;
    case ACT.tanh:
      return 1 - y * y;
    case ACT.clamp:
      return z >= 0 && z <= ceiling ? 1 : 0;
    case ACT.identity:
      return 1;
    default:
      return unknownCode(code);
  }
}

/** Unreachable for a code of ACT: the compiler proves every case handled; a kernel given another throws. */
function unknownCode(code: never): never {
  throw new Error(`fused LSTM cell: unknown activation code ${String(code)}`);
}

// 2^k for k in -127..127, for sigmoid() below.
const POW2 = Float64Array.from({ length: 255 }, (_, k) => 2 ** (k - 127));

/**
 * 1 / (1 + e^-z) in double precision to within ~2e-9 (far below float32's 6e-8), about 3x faster than
 * with Math.exp: e^x = 2^k e^r with k = round(x / ln 2), |r| <= ln2 / 2, e^r by its degree-7 Taylor
 * polynomial (relative error < 1e-8). -z is clamped to +-80 (which keeps 2^k in the table): above 80
 * the result is 1 in float32 anyway; below -80 it stays at e^-80 ~ 1.8e-35 instead of going on toward 0.
 */
function sigmoid(z: number): number {
  const x = z > 80 ? -80 : z < -80 ? 80 : -z;
  const k = Math.round(x * Math.LOG2E);
  const r = x - k * Math.LN2;
  const p = 1 + r * (1 + r * (1 / 2 + r * (1 / 6 + r * (1 / 24 + r * (1 / 120 + r * (1 / 720 + r * (1 / 5040)))))));
  return 1 / (1 + p * POW2[k + 127]);
}

function rec(hard: boolean, z: number): number {
  if (!hard) return sigmoid(z);
  const s = 0.2 * z + 0.5;
  return s < 0 ? 0 : s > 1 ? 1 : s;
}

function recGrad(hard: boolean, s: number): number {
  return hard ? (s > 0 && s < 1 ? 0.2 : 0) : s * (1 - s);
}

// ---------------------------------------------------------------------------------------------------
// Backend adapters: the same loops over Float32Array views, whether the data lives in a JS array (cpu)
// or in the wasm heap (wasm). Outputs are allocated before any view is taken: a wasm allocation may
// grow the heap, which detaches earlier views.

interface Io {
  read(t: tf.TensorInfo): Float32Array;
  alloc(shape: number[]): tf.TensorInfo;
  /** Frees a scratch tensor made by alloc or sigmoid that is not returned as an output. */
  free(t: tf.TensorInfo): void;
  /** The backend's own sigmoid kernel on a tensor, when it beats a JavaScript loop (wasm: XNNPACK). */
  sigmoid: ((t: tf.TensorInfo) => tf.TensorInfo) | null;
}

type Backendish = tf.KernelBackend & {
  data?: { get(id: tf.DataId): { values: Float32Array } };
  makeTensorInfo?(shape: number[], dtype: tf.DataType, values?: Float32Array): tf.TensorInfo;
  makeOutput?(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap?(t: tf.TensorInfo): Float32Array;
};

function cpuIo(backend: Backendish): Io {
  return {
    read: (t) => backend.data!.get(t.dataId).values,
    alloc: (shape) => backend.makeTensorInfo!(shape, 'float32', new Float32Array(shape.reduce((a, b) => a * b, 1))),
    free: (t) => backend.disposeData(t.dataId),
    sigmoid: null, // tfjs's cpu Sigmoid is the same JavaScript loop
  };
}

function wasmIo(backend: Backendish): Io {
  // A view of the heap is only valid until the next allocation (which may grow the heap): callers take
  // views after allocating.
  const sigmoidKernel = tf.getKernel('Sigmoid', 'wasm');
  return {
    read: (t) => backend.typedArrayFromHeap!(t),
    alloc: (shape) => backend.makeOutput!(shape, 'float32'),
    free: (t) => backend.disposeData(t.dataId),
    sigmoid: sigmoidKernel
      ? (t) => sigmoidKernel.kernelFunc({ inputs: { x: t }, backend, attrs: {} }) as tf.TensorInfo
      : null,
  };
}

function forwardKernel(io: Io, inputs: tf.NamedTensorInfoMap, attrs: Attrs): tf.TensorInfo[] {
  const { xp, r, h, c } = inputs as Record<'xp' | 'r' | 'h' | 'c', tf.TensorInfo>;
  const mask = inputs.mask;
  const [B, H4] = r.shape;
  const H = H4 / 4;
  const H3 = 3 * H;
  const { t, recording, act: code, ceiling, hardSigmoid } = attrs;
  const xo = t * B * H4;
  // Pass 1: the three sigmoid gates for the whole step, [B, 3H]: by the backend's kernel when it has
  // a fast one (it is most of the step's arithmetic), else in the loop below.
  const backendSigmoid = hardSigmoid ? null : io.sigmoid;
  let ifo: tf.TensorInfo;
  if (backendSigmoid) {
    const pre = io.alloc([B, H3]);
    const [preV, xpV, rV] = [io.read(pre), io.read(xp), io.read(r)];
    for (let b = 0; b < B; b++) {
      // Columns i, f (0..2H) then o (3H..4H) of PyTorch's (i, f, g, o).
      for (let j = 0; j < H3; j++) {
        const col = j < 2 * H ? j : j + H;
        preV[b * H3 + j] = xpV[xo + b * H4 + col] + rV[b * H4 + col];
      }
    }
    ifo = backendSigmoid(pre);
    io.free(pre);
  } else {
    ifo = io.alloc([B, H3]);
    const [ifoV, xpV, rV] = [io.read(ifo), io.read(xp), io.read(r)];
    for (let b = 0; b < B; b++) {
      for (let j = 0; j < H3; j++) {
        const col = j < 2 * H ? j : j + H;
        ifoV[b * H3 + j] = rec(hardSigmoid, xpV[xo + b * H4 + col] + rV[b * H4 + col]);
      }
    }
  }
  // Pass 2: candidate, cell, output.
  const hOut = io.alloc([B, H]);
  const cOut = io.alloc([B, H]);
  const maskedOut = mask ? io.alloc([B, H]) : null;
  const saved = recording ? [io.alloc([B, H]), ...(mask ? [io.alloc([B, H])] : [])] : [];
  const [xpV, rV, hV, cV, ifoV] = [io.read(xp), io.read(r), io.read(h), io.read(c), io.read(ifo)];
  const mV = mask ? io.read(mask) : null;
  const [hN, cN] = [io.read(hOut), io.read(cOut)];
  const oV = maskedOut ? io.read(maskedOut) : null;
  const [zgV, cNewV] = saved.map((x) => io.read(x));
  for (let b = 0; b < B; b++) {
    const m = mV ? mV[t * B + b] : 1;
    const e0 = b * H3;
    const z0 = xo + b * H4 + 2 * H; // the g columns
    const r0 = b * H4 + 2 * H;
    for (let j = 0; j < H; j++) {
      const q = b * H + j;
      const i = ifoV[e0 + j];
      const f = ifoV[e0 + H + j];
      const o = ifoV[e0 + 2 * H + j];
      const zg = Math.fround(xpV[z0 + j] + rV[r0 + j]);
      const g = act(code, ceiling, zg);
      const cNew = Math.fround(f * cV[q] + i * g);
      const a = act(code, ceiling, cNew);
      const hNew = o * a;
      if (mV) {
        oV![q] = hNew * m;
        hN[q] = m ? hNew : hV[q];
        cN[q] = m ? cNew : cV[q];
      } else {
        hN[q] = hNew;
        cN[q] = cNew;
      }
      if (zgV) zgV[q] = zg;
      if (cNewV) cNewV[q] = cNew;
    }
  }
  if (!recording) io.free(ifo);
  return [hOut, cOut, ...(maskedOut ? [maskedOut] : []), ...(recording ? [ifo, ...saved] : [])];
}

function backwardKernel(io: Io, inputs: tf.NamedTensorInfoMap, attrs: Attrs): tf.TensorInfo[] {
  const { dy, IFO, ZG, CPrev, C } = inputs as Record<'dy' | 'IFO' | 'ZG' | 'CPrev' | 'C', tf.TensorInfo>;
  const { mask, dzW, keep, dc } = inputs;
  const [T, B, H] = C.shape;
  const H4 = 4 * H;
  const { t, act: code, ceiling, hardSigmoid } = attrs;
  const outs = [io.alloc([B, H4]), io.alloc([B, H]), ...(mask ? [io.alloc([B, H])] : [])];
  const [dz, dcOut, keepOut] = outs.map((o) => io.read(o));
  const dyV = io.read(dy);
  const ifoV = io.read(IFO);
  const zgV = io.read(ZG);
  const cpV = io.read(CPrev);
  const cV = io.read(C);
  const mV = mask ? io.read(mask) : null;
  const dzWV = dzW ? io.read(dzW) : null;
  const keepV = keep ? io.read(keep) : null;
  const dcV = dc ? io.read(dc) : null;
  const so = t * B * H; // offset of step t in the [T, B, H] tensors
  const dhFirst = T * B * H; // rows T and T+1 of dy: the gradients of hN and cN
  const dcFirst = (T + 1) * B * H;
  for (let b = 0; b < B; b++) {
    const m = mV ? mV[t * B + b] : 1;
    const e0 = (t * B + b) * 3 * H;
    const k0 = b * H4;
    for (let j = 0; j < H; j++) {
      const q = b * H + j;
      const s = so + q;
      const dh = dzWV ? dzWV[q] + (keepV ? keepV[q] : 0) : dyV[dhFirst + q];
      const dcIn = dcV ? dcV[q] : dyV[dcFirst + q];
      const i = ifoV[e0 + j];
      const f = ifoV[e0 + H + j];
      const o = ifoV[e0 + 2 * H + j];
      const zg = zgV[s];
      const g = act(code, ceiling, zg);
      const cs = cV[s];
      const a = act(code, ceiling, cs);
      const dhNew = (dh + dyV[s]) * m;
      const dcNew = dcIn * m + dhNew * o * actGrad(code, ceiling, cs, a);
      const k = k0 + j;
      dz[k] = dcNew * g * recGrad(hardSigmoid, i);
      dz[k + H] = dcNew * cpV[s] * recGrad(hardSigmoid, f);
      dz[k + 2 * H] = dcNew * i * actGrad(code, ceiling, zg, g);
      dz[k + 3 * H] = dhNew * a * recGrad(hardSigmoid, o);
      dcOut[q] = dcNew * f + (mV ? dcIn * (1 - m) : 0);
      if (keepOut) keepOut[q] = dh * (1 - m);
    }
  }
  return outs;
}

function register(backendName: string, io: (b: Backendish) => Io): void {
  tf.registerKernel({
    kernelName: CELL_FORWARD,
    backendName,
    kernelFunc: ({ inputs, backend, attrs }) =>
      forwardKernel(io(backend as Backendish), inputs, attrs as unknown as Attrs),
  });
  tf.registerKernel({
    kernelName: CELL_BACKWARD,
    backendName,
    kernelFunc: ({ inputs, backend, attrs }) =>
      backwardKernel(io(backend as Backendish), inputs, attrs as unknown as Attrs),
  });
}

// One adapter per backend of FUSED_BACKENDS (the list kernel-path.ts picks the fused loop by), so the
// two cannot drift apart.
const IO: Record<(typeof FUSED_BACKENDS)[number], (b: Backendish) => Io> = { cpu: cpuIo, wasm: wasmIo };
for (const name of FUSED_BACKENDS) register(name, IO[name]);
