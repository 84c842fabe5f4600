import * as tf from '@tensorflow/tfjs-core';
import { ACT, type ActCode, type CellKinds, actCode, isHardSigmoid } from './fused-cell';

/**
 * Library-owned WGSL kernels for the webgpu backend: one LSTM time step forward, and one backward, each
 * ONE compute dispatch (recurrent product included), run through tfjs-backend-webgpu's program runner.
 *
 * Why: on a GPU the LSTM's cost is its 2 x T dependent steps, and each dispatch costs tens of
 * microseconds of API time whatever its size; the generic loop launches 10 kernels per step forward and
 * 16 per training step. Here a thread per (b, j) computes the four gate pre-activations of column j
 * (xp plus its own dot products of h with W_hh^T), the gates, c and h: one dispatch per step. The
 * backward kernel likewise computes dh = dz_{t+1} W_hh itself before the cell's derivatives. (These
 * in-kernel products are plain loops, no tiling: at the sizes a per-step dispatch costs more than the
 * arithmetic, B x H threads of H or 4H multiply-adds each.)
 *
 * A tfjs program writes one output, so each step's results travel in one packed row per sequence,
 * [B, W], whose column blocks (each H wide) are, in this order (PACK below):
 *   forward  h' c' [ifo(3H) zg] [cNew] [out]   (bracketed: recording; cNew and out: masked only, as
 *            unmasked they equal c' and h')
 *   backward dz(4H, PyTorch order i f g o) dcPrev [keep]   (keep = dh * (1 - m), masked only)
 * The next step reads its state (or dz) from the previous step's row; the loop (wgsl-direction.ts)
 * stacks the rows after the loop and slices the blocks it needs.
 *
 * Inputs (gate columns in PyTorch's order, as the cpu/wasm fused loop):
 *   forward  xp [T,B,4H] (x W_ih^T + b), whhI [H,4H] (W_hh^T with each column j's four gates side by
 *            side: whhI[k, 4j + q] = W_hh^T[k, qH + j], read as vec4), prev [B,>=2H] (h, c in blocks 0, 1),
 *            mask? [T,B,1]
 *   backward dy [T+2,B,H], fwd [T*B,Wf] (the forward rows stacked in time order, recorded), whhI,
 *            c0 [B,H] (c before the first step), mask?, then from the previous backward step its row
 *            [B,Wb] (absent on the first backward step: dh and dc come from dy rows T and T+1).
 */
export const WGSL_FORWARD = 'ReluLstmWgslStep';
export const WGSL_BACKWARD = 'ReluLstmWgslStepBackward';
export const WGSL_BACKENDS = ['webgpu'] as const;

/** Column blocks (in units of H) of the packed rows; see above. */
export function forwardPack(recording: boolean, masked: boolean) {
  const ifo = recording ? 2 : -1;
  const zg = recording ? 5 : -1;
  const cNew = recording && masked ? 6 : 1;
  const width = (recording ? (masked ? 7 : 6) : 2) + (masked ? 1 : 0);
  const out = masked ? width - 1 : 0;
  return { h: 0, c: 1, ifo, zg, cNew, out, width };
}
export function backwardPack(masked: boolean) {
  return { dz: 0, dc: 4, keep: masked ? 5 : -1, width: masked ? 6 : 5 };
}

export interface ForwardStepArgs {
  t: number;
  recording: boolean;
  hiddenSize: number;
}

/** One forward step: the packed row [B, W]. */
export function wgslForward(
  kinds: CellKinds,
  args: ForwardStepArgs,
  tensors: { xp: tf.Tensor; whhI: tf.Tensor; prev: tf.Tensor; mask: tf.Tensor | null },
): tf.Tensor2D {
  const inputs: tf.NamedTensorMap = { xp: tensors.xp, whhI: tensors.whhI, prev: tensors.prev };
  if (tensors.mask) inputs.mask = tensors.mask;
  return tf.engine().runKernel(WGSL_FORWARD, inputs, { ...args, ...kindAttrs(kinds) }) as tf.Tensor2D;
}

/** One backward step at time t: the packed row [B, Wb]; `prev` is null on the first backward step. */
export function wgslBackward(
  kinds: CellKinds,
  args: { t: number; reverse: boolean },
  saved: { dy: tf.Tensor; fwd: tf.Tensor; whhI: tf.Tensor; c0: tf.Tensor; mask: tf.Tensor | null },
  prev: tf.Tensor | null,
): tf.Tensor2D {
  const inputs: tf.NamedTensorMap = { dy: saved.dy, fwd: saved.fwd, whhI: saved.whhI, c0: saved.c0 };
  if (saved.mask) inputs.mask = saved.mask;
  if (prev) inputs.prev = prev;
  return tf.engine().runKernel(WGSL_BACKWARD, inputs, { ...args, ...kindAttrs(kinds) }) as tf.Tensor2D;
}

function kindAttrs(kinds: CellKinds) {
  return {
    act: actCode(kinds.activation.kind),
    ceiling: kinds.activation.ceiling,
    hardSigmoid: isHardSigmoid(kinds.recurrentActivation),
  };
}

interface KindAttrs {
  act: ActCode;
  ceiling: number;
  hardSigmoid: boolean;
}

/** WGSL for the activations, by the same codes as the cpu/wasm kernels (fused-cell.ts). */
function activationWgsl(code: ActCode): { act: string; grad: string } {
  switch (code) {
    case ACT.relu:
      return { act: 'max(z, 0.0)', grad: 'select(0.0, 1.0, z > 0.0)' };
    case ACT.tanh:
      // tanh through exp(-2|z|): no overflow for large |z| (a plain tanh may give NaN there).
      return { act: 'sign(z) * (1.0 - exp(-2.0 * abs(z))) / (1.0 + exp(-2.0 * abs(z)))', grad: '1.0 - y * y' };
    case ACT.clamp:
      return {
        act: 'min(max(z, 0.0), uniforms.ceiling)',
        grad: 'select(0.0, 1.0, z >= 0.0 && z <= uniforms.ceiling)',
      };
    case ACT.identity:
      return { act: 'z', grad: '1.0' };
    default: {
      const unknown: never = code; // every code of ACT has a case above
      throw new Error(`WGSL LSTM cell: unknown activation code ${String(unknown)}`);
    }
  }
}

function commonWgsl(a: KindAttrs): string {
  const { act, grad } = activationWgsl(a.act);
  const rec = a.hardSigmoid ? 'clamp(0.2 * z + 0.5, 0.0, 1.0)' : '1.0 / (1.0 + exp(-z))';
  const recGrad = a.hardSigmoid ? 'select(0.0, 0.2, s > 0.0 && s < 1.0)' : 's * (1.0 - s)';
  return `
    fn act(z : f32) -> f32 { return ${act}; }
    fn actGrad(z : f32, y : f32) -> f32 { return ${grad}; }
    fn rec(z : f32) -> f32 { return ${rec}; }
    fn recGrad(s : f32) -> f32 { return ${recGrad}; }
  `;
}

const WORKGROUP = 64;

/** The parts of a tfjs WebGPUProgram these kernels set (tfjs-backend-webgpu's webgpu_program.ts). */
interface Program {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  variableNames: string[];
  workgroupSize: [number, number, number];
  uniforms: string;
  size: boolean;
  /** Per input: 4 where the shader reads it as vec4<f32>. */
  variableComponents?: number[];
  getUserCode(): string;
}

interface WebGpuBackendish {
  runWebGPUProgram(
    program: Program,
    inputs: tf.TensorInfo[],
    dtype: tf.DataType,
    uniforms?: Array<{ type: string; data: number[] }>,
  ): tf.TensorInfo;
}

/**
 * A program of B x H threads, one per (b, j). Sizes reach the shader as uniforms (tfjs passes every
 * input's and the output's shape as `uniforms.<name>Shape`), so one compiled pipeline serves every
 * size; the shader key names only what changes the code.
 */
function program(
  key: string,
  outputShape: number[],
  threads: number,
  variableNames: string[],
  body: () => string,
): Program {
  return {
    outputShape,
    shaderKey: key,
    dispatchLayout: { x: outputShape.map((_, i) => i) },
    dispatch: [Math.ceil(threads / WORKGROUP), 1, 1],
    variableNames,
    workgroupSize: [WORKGROUP, 1, 1],
    uniforms: 't : i32, dir : i32, ceiling : f32,',
    size: false,
    getUserCode: body,
  };
}

/** Runs `p` with the step's uniforms: t, the loop's direction (+1 forward in time, -1 reverse), the ceiling. */
function run(
  backend: unknown,
  p: Program,
  inputs: tf.TensorInfo[],
  u: { t: number; reverse: boolean; ceiling: number },
) {
  const uniforms = [
    { type: 'int32', data: [u.t] },
    { type: 'int32', data: [u.reverse ? -1 : 1] },
    { type: 'float32', data: [u.ceiling] },
  ];
  return (backend as WebGpuBackendish).runWebGPUProgram(p, inputs, 'float32', uniforms);
}

interface ForwardAttrs extends KindAttrs, ForwardStepArgs {}

function forwardProgram(B: number, masked: boolean, a: ForwardAttrs): Program {
  const H = a.hiddenSize;
  const pack = forwardPack(a.recording, masked);
  const key = `reluLstmFwd_${masked}_${a.recording}_${a.act}_${a.hardSigmoid}`;
  const names = ['xp', 'whhI', 'prev', ...(masked ? ['mask'] : [])];
  const put = (block: number, value: string) => `result[r0 + ${block} * H] = ${value};`;
  // Built only when the pipeline is compiled (once per shader key), not on every step.
  const body = () => `
    ${commonWgsl(a)}
    fn main(index : i32) {
      let H = uniforms.whhIShape.x;
      let B = uniforms.prevShape.x;
      if (index >= B * H) { return; }
      let b = index / H;
      let j = index % H;
      let x0 = (uniforms.t * B + b) * 4 * H + j;
      var z = vec4<f32>(xp[x0], xp[x0 + H], xp[x0 + 2 * H], xp[x0 + 3 * H]);
      let p0 = b * uniforms.prevShape.y;
      // + h W_hh^T at column j of each gate: whhI[k, j] holds W_hh^T[k, j + (0, H, 2H, 3H)] as one vec4.
      for (var k = 0; k < H; k++) {
        z = z + prev[p0 + k] * whhI[k * H + j];
      }
      let i = rec(z.x);
      let f = rec(z.y);
      let zg = z.z;
      let o = rec(z.w);
      let g = act(zg);
      let hPrev = prev[p0 + j];
      let cPrev = prev[p0 + H + j];
      let cNew = f * cPrev + i * g;
      let hNew = o * act(cNew);
      let r0 = b * uniforms.outShape.y + j;
      ${
        masked
          ? `let m = mask[uniforms.t * B + b];
      ${put(pack.h, 'select(hPrev, hNew, m != 0.0)')}
      ${put(pack.c, 'select(cPrev, cNew, m != 0.0)')}
      ${put(pack.out, 'hNew * m')}`
          : `${put(pack.h, 'hNew')}
      ${put(pack.c, 'cNew')}`
      }
      ${
        a.recording
          ? `${put(pack.ifo, 'i')}
      ${put(pack.ifo + 1, 'f')}
      ${put(pack.ifo + 2, 'o')}
      ${put(pack.zg, 'zg')}
      ${masked ? put(pack.cNew, 'cNew') : ''}`
          : ''
      }
    }
  `;
  return {
    ...program(key, [B, pack.width * H], B * H, names, body),
    variableComponents: components(names),
  };
}

/** whhI is read as vec4<f32>, every other input as f32. */
function components(names: string[]): number[] {
  return names.map((n) => (n === 'whhI' ? 4 : 1));
}

interface BackwardAttrs extends KindAttrs {
  t: number;
  reverse: boolean;
}

function backwardProgram(B: number, H: number, masked: boolean, first: boolean, a: BackwardAttrs): Program {
  const fp = forwardPack(true, masked);
  const bp = backwardPack(masked);
  const key = `reluLstmBwd_${masked}_${first}_${a.act}_${a.hardSigmoid}`;
  // Only the inputs the shader reads: WebGPU drops unused bindings from the pipeline's layout.
  const names = ['dy', 'fwd', 'c0', ...(masked ? ['mask'] : []), ...(first ? [] : ['whhI', 'prev'])];
  const dhIn = first ? `dy[T * B * H + q]` : `dzW(b, j, H)${masked ? ` + prev[p0 + ${bp.keep} * H + j]` : ''}`;
  const dcIn = first ? `dy[(T + 1) * B * H + q]` : `prev[p0 + ${bp.dc} * H + j]`;
  const fwdAt = (block: number) => `fwd[r0 + ${block} * H + j]`;
  // Built only when the pipeline is compiled (once per shader key), not on every step.
  const body = () => `
    ${commonWgsl(a)}
    ${
      first
        ? ''
        : `// (dz_{t+1} W_hh)[b, j] = sum over k and gate q of dz[b, qH + k] W_hh^T[j, qH + k]; whhI[j, k] holds the four.
    fn dzW(b : i32, j : i32, H : i32) -> f32 {
      var s = 0.0;
      let d0 = b * uniforms.prevShape.y;
      let w0 = j * H;
      for (var k = 0; k < H; k++) {
        let dz = vec4<f32>(prev[d0 + k], prev[d0 + H + k], prev[d0 + 2 * H + k], prev[d0 + 3 * H + k]);
        s = s + dot(dz, whhI[w0 + k]);
      }
      return s;
    }`
    }
    fn main(index : i32) {
      let B = uniforms.c0Shape.x;
      let H = uniforms.c0Shape.y;
      let T = uniforms.dyShape.x - 2;
      if (index >= B * H) { return; }
      let b = index / H;
      let j = index % H;
      let q = index;
      let t = uniforms.t;
      let Wf = uniforms.fwdShape.y;
      let r0 = (t * B + b) * Wf;
      ${first ? '' : 'let p0 = b * uniforms.prevShape.y;'}
      let i = ${fwdAt(fp.ifo)};
      let f = ${fwdAt(fp.ifo + 1)};
      let o = ${fwdAt(fp.ifo + 2)};
      let zg = ${fwdAt(fp.zg)};
      let cs = ${fwdAt(fp.cNew)};
      // c before step t: the carried c of the step before it in the loop's order, or c0.
      let tp = t - uniforms.dir;
      var cPrev = 0.0;
      if (tp >= 0 && tp < T) { cPrev = fwd[(tp * B + b) * Wf + ${fp.c} * H + j]; } else { cPrev = c0[q]; }
      let m = ${masked ? 'mask[t * B + b]' : '1.0'};
      let dh = ${dhIn};
      let dcIn = ${dcIn};
      let g = act(zg);
      let a = act(cs);
      let dhNew = (dh + dy[t * B * H + q]) * m;
      let dcNew = dcIn * m + dhNew * o * actGrad(cs, a);
      let k = b * uniforms.outShape.y + j;
      result[k] = dcNew * g * recGrad(i);
      result[k + H] = dcNew * cPrev * recGrad(f);
      result[k + 2 * H] = dcNew * i * actGrad(zg, g);
      result[k + 3 * H] = dhNew * a * recGrad(o);
      result[k + ${bp.dc} * H] = dcNew * f + dcIn * (1.0 - m);
      ${masked ? `result[k + ${bp.keep} * H] = dh * (1.0 - m);` : ''}
    }
  `;
  return { ...program(key, [B, bp.width * H], B * H, names, body), variableComponents: components(names) };
}

tf.registerKernel({
  kernelName: WGSL_FORWARD,
  backendName: 'webgpu',
  kernelFunc: ({ inputs, backend, attrs }) => {
    const a = attrs as unknown as ForwardAttrs;
    const { xp, whhI, prev, mask } = inputs as Record<string, tf.TensorInfo>;
    const p = forwardProgram(prev.shape[0], !!mask, a);
    const reverse = false; // the forward shader does not look at the direction
    return run(backend, p, [xp, whhI, prev, ...(mask ? [mask] : [])], { t: a.t, reverse, ceiling: a.ceiling });
  },
});

tf.registerKernel({
  kernelName: WGSL_BACKWARD,
  backendName: 'webgpu',
  kernelFunc: ({ inputs, backend, attrs }) => {
    const a = attrs as unknown as BackwardAttrs;
    const { dy, fwd, whhI, c0, mask, prev } = inputs as Record<string, tf.TensorInfo>;
    const [B, H] = c0.shape;
    const p = backwardProgram(B, H, !!mask, !prev, a);
    const list = [dy, fwd, c0, ...(mask ? [mask] : []), ...(prev ? [whhI, prev] : [])];
    return run(backend, p, list, a);
  },
});
