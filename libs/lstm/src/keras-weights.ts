import * as tf from '@tensorflow/tfjs-core';
import { parameterNames, parameterShapes, resolveConfig, type ReluLstmOptions } from './config';
import { StateDictError } from './errors';

/**
 * Conversion between PyTorch state dicts (`torch.nn.LSTM` names and layout, what `ReluLstm.stateDict()`
 * gives) and the weight list of Keras / tfjs-layers LSTM layers (`layer.getWeights()`,
 * `model.setWeights()`).
 *
 * Per layer and direction:
 *   PyTorch  weight_ih [4H, I]   weight_hh [4H, H]   bias_ih [4H]   bias_hh [4H]
 *   Keras    kernel    [I, 4H]   recurrent_kernel [H, 4H]           bias [4H]
 * with kernel = weight_ih^T, recurrent_kernel = weight_hh^T, bias = bias_ih + bias_hh. Both use the
 * gate order (i, f, g, o) (Keras calls the candidate `c`), so no block is permuted. Keras has a single
 * bias, so the way back is not unique: it gives bias_ih = bias and bias_hh = 0, which computes the same.
 * With `bias: false` (Keras `useBias: false`) the bias entries are absent on both sides.
 *
 * The list is ordered the way tf.layers orders the weights of a model: layer by layer, and within a
 * bidirectional layer (a `tf.layers.bidirectional` wrapper, whose default 'concat' merge puts the
 * forward half first like PyTorch) the forward layer's weights before the backward layer's:
 *   [kernel, recurrent_kernel, bias] of (layer 0 forward), (layer 0 backward), (layer 1 forward), ...
 */

/** The options that fix the weight layout; a `ReluLstmConfig` qualifies. Defaults as in `ReluLstm`. */
export type WeightLayout = Pick<ReluLstmOptions, 'inputSize' | 'hiddenSize' | 'numLayers' | 'bidirectional' | 'bias'>;

/** What one position of the Keras weight list holds. */
export interface KerasWeightSpec {
  layer: number;
  reverse: boolean;
  role: 'kernel' | 'recurrent_kernel' | 'bias';
  shape: number[];
}

/** The Keras weight list's layout, position by position, for a given LSTM layout. */
export function kerasWeightSpecs(layout: WeightLayout): KerasWeightSpec[] {
  const cfg = resolveLayout(layout);
  const H = cfg.hiddenSize;
  const D = cfg.bidirectional ? 2 : 1;
  const specs: KerasWeightSpec[] = [];
  for (let layer = 0; layer < cfg.numLayers; layer++) {
    const inSize = layer === 0 ? cfg.inputSize : H * D;
    for (let d = 0; d < D; d++) {
      const reverse = d === 1;
      specs.push({ layer, reverse, role: 'kernel', shape: [inSize, 4 * H] });
      specs.push({ layer, reverse, role: 'recurrent_kernel', shape: [H, 4 * H] });
      if (cfg.bias) specs.push({ layer, reverse, role: 'bias', shape: [4 * H] });
    }
  }
  return specs;
}

/**
 * PyTorch state dict -> Keras weight list (new tensors; the caller disposes them). The dict must hold
 * exactly the layout's entries as float32 tensors of the right shapes, else `StateDictError` names the
 * first wrong entry with the expected and actual shape.
 */
export function toKerasWeights(stateDict: Record<string, tf.Tensor>, layout: WeightLayout): tf.Tensor[] {
  const cfg = resolveLayout(layout);
  const expected = parameterShapes(cfg);
  checkStateDict(stateDict, expected, describeLayout(cfg));
  const D = cfg.bidirectional ? 2 : 1;
  return tf.tidy(() => {
    const out: tf.Tensor[] = [];
    for (let layer = 0; layer < cfg.numLayers; layer++) {
      for (let d = 0; d < D; d++) {
        const [wih, whh, bih, bhh] = parameterNames(layer, d === 1, cfg.bias);
        out.push(tf.transpose(stateDict[wih]), tf.transpose(stateDict[whh]));
        if (cfg.bias) out.push(tf.add(stateDict[bih], stateDict[bhh]));
      }
    }
    return out;
  });
}

/**
 * Keras weight list -> PyTorch state dict (new tensors; the caller disposes them), with
 * bias_ih = bias and bias_hh = 0. A wrong count or a misshapen weight throws `StateDictError`.
 */
export function fromKerasWeights(weights: tf.Tensor[], layout: WeightLayout): Record<string, tf.Tensor> {
  const specs = kerasWeightSpecs(layout);
  const cfg = resolveLayout(layout);
  if (!Array.isArray(weights) || weights.length !== specs.length) {
    const got = Array.isArray(weights) ? `${weights.length} tensors` : typeof weights;
    throw new StateDictError(
      'keras_weights',
      `expected ${specs.length} tensors ([kernel, recurrent_kernel${cfg.bias ? ', bias' : ''}] per layer and direction of a ${describeLayout(cfg)}), got ${got}`,
    );
  }
  specs.forEach((spec, i) => {
    const entry = `keras_weights[${i}] (layer ${spec.layer} ${spec.reverse ? 'backward' : 'forward'} ${spec.role})`;
    checkTensor(entry, weights[i], spec.shape);
  });
  return tf.tidy(() => {
    const out: Record<string, tf.Tensor> = {};
    let i = 0;
    for (const spec of specs) {
      const w = weights[i++];
      const [wih, whh, bih, bhh] = parameterNames(spec.layer, spec.reverse, cfg.bias);
      if (spec.role === 'kernel') out[wih] = tf.transpose(w);
      else if (spec.role === 'recurrent_kernel') out[whh] = tf.transpose(w);
      else {
        out[bih] = tf.clone(w);
        out[bhh] = tf.zerosLike(w);
      }
    }
    // Insert in PyTorch's order, so iterating the dict lists the entries as `nn.LSTM` does.
    const ordered: Record<string, tf.Tensor> = {};
    for (const [name] of parameterShapes(cfg)) ordered[name] = out[name];
    return ordered;
  });
}

function resolveLayout(layout: WeightLayout) {
  return resolveConfig({
    inputSize: layout?.inputSize,
    hiddenSize: layout?.hiddenSize,
    numLayers: layout?.numLayers,
    bidirectional: layout?.bidirectional,
    bias: layout?.bias,
  });
}

function describeLayout(cfg: {
  numLayers: number;
  bidirectional: boolean;
  inputSize: number;
  hiddenSize: number;
}): string {
  return `${cfg.numLayers}-layer ${cfg.bidirectional ? 'bidirectional' : 'unidirectional'} LSTM (input ${cfg.inputSize}, hidden ${cfg.hiddenSize})`;
}

function checkStateDict(dict: Record<string, tf.Tensor>, expected: Array<[string, number[]]>, what: string): void {
  if (dict === null || typeof dict !== 'object') {
    throw new StateDictError(
      'state_dict',
      `expected an object of tensors, got ${dict === null ? 'null' : typeof dict}`,
    );
  }
  for (const [name, shape] of expected) {
    if (!Object.prototype.hasOwnProperty.call(dict, name)) {
      throw new StateDictError(name, `missing: expected a float32 tensor of shape [${shape.join(', ')}] for a ${what}`);
    }
    checkTensor(name, dict[name], shape);
  }
  const names = new Set(expected.map(([n]) => n));
  for (const name of Object.keys(dict)) {
    if (!names.has(name)) {
      throw new StateDictError(name, `unexpected entry: a ${what} has only ${[...names].join(', ')}`);
    }
  }
}

function checkTensor(entry: string, t: unknown, shape: number[]): void {
  if (!(t instanceof tf.Tensor)) {
    throw new StateDictError(
      entry,
      `expected a float32 tensor of shape [${shape.join(', ')}], got ${t === null ? 'null' : typeof t}`,
    );
  }
  if (t.isDisposed) throw new StateDictError(entry, 'expected a live tensor, got a disposed one');
  const got = t.shape as number[];
  if (got.length !== shape.length || got.some((s, i) => s !== shape[i])) {
    throw new StateDictError(entry, `expected shape [${shape.join(', ')}], got [${got.join(', ')}]`);
  }
  if (t.dtype !== 'float32') throw new StateDictError(entry, `expected dtype float32, got ${t.dtype}`);
}
