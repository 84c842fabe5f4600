import * as tf from '@tensorflow/tfjs-core';
// The head and the losses differentiate through ordinary tfjs ops: make sure their gradients exist.
import './gradients';
import { SequenceModelConfig, SequenceModelOptions, lstmOptions, resolveSequenceModelConfig } from './config';
import { LstmInputError, StateDictError } from './errors';
import { ForwardOptions, LstmState, ReluLstm } from './relu-lstm';
import { Rng, RngState } from './rng';
import { TensorLike, toTensor } from './tensor-like';

export interface PredictResult {
  /** See `HEADS` (config.ts) for the shape. */
  y: tf.Tensor;
  /** [numLayers * numDirections, batch, hiddenSize] */
  hN: tf.Tensor3D;
  cN: tf.Tensor3D;
}

/** Names of the head's parameters, as in a PyTorch `nn.Linear` registered as `head`. */
export const HEAD_WEIGHT = 'head.weight';
export const HEAD_BIAS = 'head.bias';

// The head's initial weights come from their own stream so they never depend on the LSTM's size.
const HEAD_SEED_SALT = 0x68656164; // "head"

let uidCounter = 0;

/**
 * A `ReluLstm` followed by a linear head y = h W^T + b (`head.weight` [outputSize, D*H],
 * `head.bias` [outputSize], PyTorch's `nn.Linear` layout), the unit `fit` trains. The head is
 * initialised like `nn.Linear`: uniform(-1/sqrt(D*H), 1/sqrt(D*H)) for both, from the model's seed.
 */
export class SequenceModel {
  readonly config: SequenceModelConfig;
  readonly lstm: ReluLstm;
  private readonly head = new Map<string, tf.Variable>();
  private disposed = false;

  constructor(options: SequenceModelOptions) {
    this.config = resolveSequenceModelConfig(options);
    this.lstm = new ReluLstm(lstmOptions(this.config.lstm));
    const { outputSize } = this.config;
    const fanIn = this.featureSize;
    const k = 1 / Math.sqrt(fanIn);
    const rng = new Rng((this.config.lstm.seed ^ HEAD_SEED_SALT) | 0);
    const id = uidCounter++;
    for (const [name, shape] of [
      [HEAD_WEIGHT, [outputSize, fanIn]],
      [HEAD_BIAS, [outputSize]],
    ] as const) {
      const size = shape.reduce((a: number, b: number) => a * b, 1);
      const initial = tf.tensor(rng.uniformArray(size, -k, k), [...shape], 'float32');
      this.head.set(name, tf.variable(initial, true, `${name}_${id}`));
      initial.dispose();
    }
  }

  /** Width of what the head reads: hiddenSize * numDirections. */
  get featureSize(): number {
    return this.config.lstm.hiddenSize * (this.config.lstm.bidirectional ? 2 : 1);
  }

  /**
   * Runs the LSTM and the head. `x` is [batch, seq, inputSize] with `lstm.batchFirst`, else
   * [seq, batch, inputSize]; `state` and `options` are `ReluLstm.forward`'s. The caller disposes the
   * results. Differentiable: gradients reach every parameter.
   */
  predict(x: tf.Tensor3D, state?: LstmState, options: ForwardOptions = {}): PredictResult {
    this.assertAlive();
    const { output, hN, cN } = this.lstm.forward(x, state, options);
    const W = this.head.get(HEAD_WEIGHT)!;
    const b = this.head.get(HEAD_BIAS)!;
    const y = tf.tidy(() => {
      const F = this.featureSize;
      if (this.config.head === 'lastStep') {
        const { numLayers, hiddenSize: H } = this.config.lstm;
        const D = this.config.lstm.bidirectional ? 2 : 1;
        const B = hN.shape[1];
        // The last layer's rows of hN, directions side by side: [B, D*H] like the LSTM's output.
        const last = tf.slice(hN, [(numLayers - 1) * D, 0, 0], [D, B, H]);
        const features = tf.reshape(tf.transpose(last, [1, 0, 2]), [B, D * H]);
        return tf.add(tf.matMul(features, W, false, true), b);
      }
      const [s0, s1] = output.shape;
      const flat = tf.reshape(output, [s0 * s1, F]);
      return tf.reshape(tf.add(tf.matMul(flat, W, false, true), b), [s0, s1, this.config.outputSize]);
    });
    output.dispose();
    return { y, hN, cN };
  }

  /** The live trainable variables: the LSTM's (PyTorch names, PyTorch order), then head.weight, head.bias. */
  parameters(): Map<string, tf.Variable> {
    this.assertAlive();
    const out = this.lstm.parameters();
    for (const [name, v] of this.head) out.set(name, v);
    return out;
  }

  /** Copies of every parameter by name; the caller owns (and disposes) them. */
  stateDict(): Record<string, tf.Tensor> {
    this.assertAlive();
    const out = this.lstm.stateDict();
    for (const [name, v] of this.head) out[name] = tf.clone(v);
    return out;
  }

  /**
   * Loads the LSTM's and the head's weights (tensors, `{ data, shape }` or nested arrays). Every entry
   * is checked before any is assigned; a missing, extra or misshapen entry throws `StateDictError`.
   */
  loadStateDict(dict: Record<string, TensorLike>): void {
    this.assertAlive();
    if (dict === null || typeof dict !== 'object')
      throw new StateDictError('stateDict', `expected an object, got ${typeof dict}`);
    const lstmPart: Record<string, TensorLike> = {};
    for (const [name, value] of Object.entries(dict)) if (!this.head.has(name)) lstmPart[name] = value;
    const headTensors: Array<[tf.Variable, tf.Tensor]> = [];
    try {
      for (const [name, v] of this.head) {
        if (!(name in dict)) throw new StateDictError(name, `missing entry of shape [${v.shape.join(', ')}]`);
        headTensors.push([v, toTensor(name, dict[name], v.shape)]);
      }
      this.lstm.loadStateDict(lstmPart); // validates all of its entries before assigning any
      for (const [v, t] of headTensors) v.assign(t);
    } finally {
      tf.dispose(headTensors.map(([, t]) => t));
    }
  }

  /** State of the generator of the LSTM's dropout masks (checkpoints save it). */
  dropoutRngState(): RngState {
    return this.lstm.dropoutRngState();
  }

  setDropoutRngState(state: RngState): void {
    this.lstm.setDropoutRngState(state);
  }

  /** Frees every variable. The model cannot be used afterwards. */
  dispose(): void {
    if (this.disposed) return;
    this.lstm.dispose();
    for (const v of this.head.values()) v.dispose();
    this.head.clear();
    this.disposed = true;
  }

  private assertAlive() {
    if (this.disposed) throw new LstmInputError('model', 'a model that has not been disposed', 'a disposed model');
  }
}
