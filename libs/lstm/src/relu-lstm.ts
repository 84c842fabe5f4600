import * as tf from '@tensorflow/tfjs-core';
import './gradients';
import { activationSpec } from './activations';
import { ReluLstmConfig, ReluLstmOptions, parameterNames, parameterShapes, resolveConfig } from './config';
import { LstmInputError, StateDictError } from './errors';
import { initialWeights } from './init';
import { lstmKernelPath } from './kernel-path';
import { gateOrder, runDirection } from './lstm-direction';
import { sliceRows } from './rows';
import { Rng, RngState } from './rng';
import { TensorLike, toTensor } from './tensor-like';

/**
 * Initial state, each `[numLayers * numDirections, batch, hiddenSize]`. A batch dimension of 1 is
 * broadcast over the batch (one start state for every sequence; gradients are summed back to it).
 */
export interface LstmState {
  h0: tf.Tensor3D;
  c0: tf.Tensor3D;
}

export interface ForwardOptions {
  /** Apply dropout between layers (when the model has `dropout > 0`). Default false. */
  training?: boolean;
  /**
   * True length of each sequence in a padded batch (each in 1..seq). Outputs past a sequence's length
   * are zero and its hN/cN are taken at its last valid step, as with `pack_padded_sequence`.
   */
  lengths?: ArrayLike<number>;
}

export interface ForwardResult {
  /** [seq, batch, D*H], or [batch, seq, D*H] with batchFirst. */
  output: tf.Tensor3D;
  /** [numLayers * numDirections, batch, hiddenSize] */
  hN: tf.Tensor3D;
  /** [numLayers * numDirections, batch, hiddenSize] */
  cN: tf.Tensor3D;
}

/**
 * A multi-layer, optionally bidirectional LSTM with configurable activations, defaulting to the
 * ReLU-LSTM: gates = x W_ih^T + b_ih + h W_hh^T + b_hh in PyTorch's gate order (i, f, g, o);
 * i, f, o = recurrentActivation (sigmoid); g = activation (relu); c = f*c + i*g; h = o*activation(c).
 * Shapes, parameter names and layout are those of `torch.nn.LSTM`, so state dicts move both ways.
 */
export class ReluLstm {
  readonly config: ReluLstmConfig;
  private readonly params = new Map<string, tf.Variable>();
  private dropoutRng: Rng;
  private disposed = false;

  constructor(options: ReluLstmOptions) {
    this.config = resolveConfig(options);
    for (const [name, { shape, data }] of initialWeights(this.config)) {
      const initial = tf.tensor(data, shape, 'float32');
      this.params.set(name, tf.variable(initial, true, `${name}_${uid()}`));
      initial.dispose(); // tf.variable keeps its own copy
    }
    // Dropout masks get their own stream so that changing the dropout rate never changes the weights.
    this.dropoutRng = new Rng(this.config.seed ^ 0x5bd1e995);
  }

  get numDirections(): number {
    return this.config.bidirectional ? 2 : 1;
  }

  /** The live trainable variables, by PyTorch name, in PyTorch's order. */
  parameters(): Map<string, tf.Variable> {
    this.assertAlive();
    return new Map(this.params);
  }

  /** Copies of every parameter by PyTorch name; the caller owns (and disposes) them. */
  stateDict(): Record<string, tf.Tensor> {
    this.assertAlive();
    const out: Record<string, tf.Tensor> = {};
    for (const [name, v] of this.params) out[name] = tf.clone(v);
    return out;
  }

  /**
   * Loads weights by PyTorch name. Accepts tensors, `{ data, shape }` with a typed array or a flat
   * number array, or nested arrays. Every entry is checked before any is assigned, so a bad dict
   * leaves the model unchanged; a missing, extra or misshapen entry throws `StateDictError`.
   */
  loadStateDict(dict: Record<string, TensorLike>): void {
    this.assertAlive();
    const tensors = tf.tidy(() => {
      const expected = new Map(parameterShapes(this.config));
      return checkStateDict(dict, expected);
    });
    try {
      for (const [name, t] of Object.entries(tensors)) this.params.get(name)!.assign(t);
    } finally {
      tf.dispose(Object.values(tensors));
    }
  }

  dropoutRngState(): RngState {
    return this.dropoutRng.state();
  }

  setDropoutRngState(state: RngState): void {
    this.dropoutRng = new Rng(state);
  }

  /**
   * Runs the LSTM over `x` ([seq, batch, inputSize], or [batch, seq, inputSize] with batchFirst).
   * The state defaults to zeros. Gradients flow to `x`, the initial state and every parameter.
   * Shapes and dtypes are checked here; values are not (that needs a read back, see `checkFinite`).
   */
  forward(x: tf.Tensor3D, state?: LstmState, options: ForwardOptions = {}): ForwardResult {
    this.assertAlive();
    const cfg = this.config;
    const { T, B } = this.checkInput(x, state);
    const lengths = options.lengths ? checkLengths(options.lengths, B, T) : null;
    const D = this.numDirections;
    const H = cfg.hiddenSize;
    const dropData = options.training && cfg.dropout > 0 && cfg.numLayers > 1 ? this.dropoutMasks(T, B) : null;
    const path = lstmKernelPath();
    return tf.tidy(() => {
      const dropMasks = dropData?.map((data) => tf.tensor3d(data, [T, B, H * D]));
      let input: tf.Tensor3D = cfg.batchFirst ? tf.transpose(x, [1, 0, 2]) : x;
      const mask = lengths && lengths.some((l) => l !== T) ? lengthMask(lengths, T) : null;
      const hNs: tf.Tensor2D[] = [];
      const cNs: tf.Tensor2D[] = [];
      for (let l = 0; l < cfg.numLayers; l++) {
        const outs: tf.Tensor3D[] = [];
        for (let d = 0; d < D; d++) {
          const idx = l * D + d;
          const h0 = state ? initialRow(state.h0, idx, B) : tf.zeros([B, H]);
          const c0 = state ? initialRow(state.c0, idx, B) : tf.zeros([B, H]);
          const { wihT, whhT, bias } = this.internalWeights(l, d === 1, gateOrder(path));
          const packed = runDirection(
            {
              path,
              hiddenSize: H,
              reverse: d === 1,
              activation: activationSpec(cfg.activation, cfg.cellClip),
              recurrentActivation: cfg.recurrentActivation,
            },
            { x: input, h0: h0 as tf.Tensor2D, c0: c0 as tf.Tensor2D, wihT, whhT, bias, mask },
          );
          outs.push(sliceRows(packed, 0, T));
          hNs.push(tf.reshape(sliceRows(packed, T, 1), [B, H]));
          cNs.push(tf.reshape(sliceRows(packed, T + 1, 1), [B, H]));
        }
        input = D === 2 ? tf.concat(outs, 2) : outs[0];
        if (dropMasks && l < cfg.numLayers - 1) input = tf.mul(input, dropMasks[l]);
      }
      const output = cfg.batchFirst ? tf.transpose(input, [1, 0, 2]) : input;
      return { output, hN: tf.stack(hNs) as tf.Tensor3D, cN: tf.stack(cNs) as tf.Tensor3D };
    });
  }

  /** Frees the variables. The model cannot be used afterwards. */
  dispose(): void {
    if (this.disposed) return;
    for (const v of this.params.values()) v.dispose();
    this.params.clear();
    this.disposed = true;
  }

  /**
   * Transposed weights with gate columns in the loop's order (PyTorch's (i, f, g, o) as it is, or
   * permuted to (i, f, o, g)), and the two biases summed. Differentiable, so gradients land on the
   * variables.
   */
  private internalWeights(layer: number, reverse: boolean, order: 'ifog' | 'ifgo') {
    const H = this.config.hiddenSize;
    const [wihName, whhName, bihName, bhhName] = parameterNames(layer, reverse, this.config.bias);
    const reorder = <T extends tf.Tensor>(w: T): T => (order === 'ifog' ? toInternalGateOrder(w) : w);
    const wihT = tf.transpose(reorder(this.params.get(wihName)!)) as tf.Tensor2D;
    const whhT = tf.transpose(reorder(this.params.get(whhName)!)) as tf.Tensor2D;
    const bias = this.config.bias
      ? (reorder(tf.add(this.params.get(bihName)!, this.params.get(bhhName)!)) as tf.Tensor1D)
      : (tf.zeros([4 * H]) as tf.Tensor1D);
    return { wihT, whhT, bias };
  }

  /** Inverted-dropout masks ([T, B, D*H] values) for layers 0..L-2, scaled by 1/(1-p), seeded. */
  private dropoutMasks(T: number, B: number): Float32Array[] {
    const cfg = this.config;
    const width = cfg.hiddenSize * this.numDirections;
    const keep = 1 - cfg.dropout;
    const masks: Float32Array[] = [];
    for (let l = 0; l < cfg.numLayers - 1; l++) {
      const data = new Float32Array(T * B * width);
      for (let k = 0; k < data.length; k++) data[k] = this.dropoutRng.next() < keep ? 1 / keep : 0;
      masks.push(data);
    }
    return masks;
  }

  /**
   * Rejects NaN or Infinity in `x` and the state with `LstmInputError` naming the tensor. One
   * asynchronous read for all of them: a synchronous one would stall a GPU backend, and webgpu under
   * Node cannot do it at all.
   */
  async checkFinite(x: tf.Tensor, state?: LstmState): Promise<void> {
    const named: Array<[string, tf.Tensor]> = [['x', x]];
    if (state) named.push(['h0', state.h0], ['c0', state.c0]);
    const flags = tf.tidy(() => tf.stack(named.map(([, t]) => tf.all(tf.isFinite(t)))));
    let finite: Awaited<ReturnType<tf.Tensor['data']>>;
    try {
      finite = await flags.data();
    } finally {
      flags.dispose();
    }
    named.forEach(([name], i) => {
      if (!finite[i]) throw new LstmInputError(name, 'finite values', 'NaN or Infinity');
    });
  }

  private checkInput(x: tf.Tensor, state: LstmState | undefined) {
    const cfg = this.config;
    const layout = cfg.batchFirst ? '[batch, seq, inputSize]' : '[seq, batch, inputSize]';
    if (!(x instanceof tf.Tensor)) throw new LstmInputError('x', `a tf.Tensor ${layout}`, x);
    if (x.rank !== 3) throw new LstmInputError('x', `rank 3 ${layout}`, `rank ${x.rank} shape [${x.shape}]`);
    if (x.dtype !== 'float32') throw new LstmInputError('x', 'dtype float32', x.dtype);
    const [T, B] = (cfg.batchFirst ? [x.shape[1], x.shape[0]] : [x.shape[0], x.shape[1]]) as [number, number];
    if (x.shape[2] !== cfg.inputSize) {
      throw new LstmInputError('x', `last dimension inputSize = ${cfg.inputSize} in ${layout}`, `shape [${x.shape}]`);
    }
    if (T < 1 || B < 1) throw new LstmInputError('x', 'at least one step and one sequence', `shape [${x.shape}]`);
    if (state !== undefined) {
      const LD = cfg.numLayers * this.numDirections;
      const want = `[${LD},${B},${cfg.hiddenSize}] (numLayers * numDirections, batch, hiddenSize; batch may be 1)`;
      for (const key of ['h0', 'c0'] as const) {
        const t = state[key];
        if (!(t instanceof tf.Tensor)) throw new LstmInputError(key, `a tf.Tensor of shape ${want}`, t);
        const [ld, b, h] = t.shape;
        if (t.rank !== 3 || ld !== LD || h !== cfg.hiddenSize || (b !== B && b !== 1)) {
          throw new LstmInputError(key, `shape ${want}`, `shape [${t.shape}]`);
        }
      }
    }
    return { T, B };
  }

  private assertAlive() {
    if (this.disposed) throw new LstmInputError('model', 'a model that has not been disposed', 'a disposed model');
  }
}

let uidCounter = 0;
function uid(): number {
  return uidCounter++;
}

/**
 * Reorders the gate blocks along axis 0 from PyTorch's (i, f, g, o) to the generic loop's (i, f, o, g).
 * split + concat rather than gather: gather's gradient needs UnsortedSegmentSum, which wasm lacks.
 */
function toInternalGateOrder<T extends tf.Tensor>(w: T): T {
  const [i, f, g, o] = tf.split(w, 4, 0);
  return tf.concat([i, f, o, g], 0) as T;
}

/** Row `idx` of an initial state as [B, H]; a batch-1 state is tiled over the batch (Tile's gradient sums it back). */
function initialRow(state: tf.Tensor3D, idx: number, B: number): tf.Tensor2D {
  const [, b, H] = state.shape;
  const row = tf.reshape(tf.slice(state, [idx, 0, 0], [1, b, H]), [b, H]);
  return (b === B ? row : tf.tile(row, [B, 1])) as tf.Tensor2D;
}

function checkLengths(lengths: ArrayLike<number>, B: number, T: number): number[] {
  const arr = Array.from(lengths);
  if (arr.length !== B) throw new LstmInputError('lengths', `${B} lengths (one per sequence)`, `${arr.length}`);
  arr.forEach((l, b) => {
    if (!Number.isInteger(l) || l < 1 || l > T) {
      throw new LstmInputError(`lengths[${b}]`, `an integer in 1..${T}`, l);
    }
  });
  return arr;
}

function lengthMask(lengths: number[], T: number): tf.Tensor3D {
  const B = lengths.length;
  const data = new Float32Array(T * B);
  for (let t = 0; t < T; t++) for (let b = 0; b < B; b++) data[t * B + b] = t < lengths[b] ? 1 : 0;
  return tf.tensor3d(data, [T, B, 1]);
}

function checkStateDict(dict: Record<string, TensorLike>, expected: Map<string, number[]>): Record<string, tf.Tensor> {
  if (dict === null || typeof dict !== 'object')
    throw new StateDictError('stateDict', `expected an object, got ${typeof dict}`);
  for (const name of Object.keys(dict)) {
    if (!expected.has(name)) {
      throw new StateDictError(name, `unexpected entry; expected only ${[...expected.keys()].join(', ')}`);
    }
  }
  const out: Record<string, tf.Tensor> = {};
  try {
    for (const [name, shape] of expected) {
      if (!(name in dict)) throw new StateDictError(name, `missing entry of shape [${shape}]`);
      out[name] = tf.keep(toTensor(name, dict[name], shape));
    }
  } catch (err) {
    tf.dispose(Object.values(out)); // kept tensors outlive the tidy: free them on the error path too
    throw err;
  }
  return out;
}
