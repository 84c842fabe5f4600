import { LstmConfigError } from './errors';

/** Activation of the cell candidate `g` and of the cell output `activation(c)`. */
export const ACTIVATIONS = ['relu', 'tanh', 'relu6', 'clippedRelu', 'linear'] as const;
export type Activation = (typeof ACTIVATIONS)[number];

/** Activation of the input, forget and output gates. hardSigmoid is tfjs's: clip(0.2x + 0.5, 0, 1). */
export const RECURRENT_ACTIVATIONS = ['sigmoid', 'hardSigmoid'] as const;
export type RecurrentActivation = (typeof RECURRENT_ACTIVATIONS)[number];

/** Constructor options of `ReluLstm`; names and defaults follow `torch.nn.LSTM` where it has them. */
export interface ReluLstmOptions {
  inputSize: number;
  hiddenSize: number;
  numLayers?: number;
  bias?: boolean;
  /** Inputs and outputs are `[batch, seq, feature]` instead of `[seq, batch, feature]`. */
  batchFirst?: boolean;
  /** Dropout probability on the outputs of every layer but the last, in training only. */
  dropout?: number;
  bidirectional?: boolean;
  activation?: Activation;
  recurrentActivation?: RecurrentActivation;
  /** Ceiling of `clippedRelu` (min(max(x, 0), cellClip)); only valid with that activation. */
  cellClip?: number;
  /** Seed of the weight initialiser and of the dropout masks. */
  seed?: number;
  /** Initialise the forget-gate biases (`b_ih` part) to 1 instead of uniform. */
  forgetBias?: boolean;
  /** Orthogonal initialisation of the recurrent weights (each gate block separately). */
  orthogonalRecurrent?: boolean;
}

/** Options with every default filled in; what `ReluLstm.config` exposes and checkpoints store. */
export type ReluLstmConfig = Required<Omit<ReluLstmOptions, 'cellClip' | 'seed'>> & {
  cellClip: number | null;
  seed: number;
};

function positiveInt(field: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
    throw new LstmConfigError(field, 'a positive integer', v);
  }
  return v;
}

function bool(field: string, v: unknown, dflt: boolean): boolean {
  if (v === undefined) return dflt;
  if (typeof v !== 'boolean') throw new LstmConfigError(field, 'a boolean', v);
  return v;
}

/** Validates options and fills defaults. Throws `LstmConfigError` naming the first bad field. */
export function resolveConfig(options: ReluLstmOptions): ReluLstmConfig {
  if (options === null || typeof options !== 'object') {
    throw new LstmConfigError('options', 'an object', options);
  }
  const known = new Set([
    'inputSize', 'hiddenSize', 'numLayers', 'bias', 'batchFirst', 'dropout', 'bidirectional',
    'activation', 'recurrentActivation', 'cellClip', 'seed', 'forgetBias', 'orthogonalRecurrent',
  ]);
  for (const key of Object.keys(options)) {
    if (!known.has(key)) throw new LstmConfigError(key, `one of the options ${[...known].join(', ')}`, key);
  }
  const activation = options.activation ?? 'relu';
  if (!ACTIVATIONS.includes(activation)) {
    throw new LstmConfigError('activation', `one of ${ACTIVATIONS.join(', ')}`, activation);
  }
  const recurrentActivation = options.recurrentActivation ?? 'sigmoid';
  if (!RECURRENT_ACTIVATIONS.includes(recurrentActivation)) {
    throw new LstmConfigError('recurrentActivation', `one of ${RECURRENT_ACTIVATIONS.join(', ')}`, recurrentActivation);
  }
  let cellClip: number | null = null;
  if (activation === 'clippedRelu') {
    const c = options.cellClip;
    if (typeof c !== 'number' || !Number.isFinite(c) || c <= 0) {
      throw new LstmConfigError('cellClip', "a finite number > 0 (the ceiling of activation 'clippedRelu')", c);
    }
    cellClip = c;
  } else if (options.cellClip !== undefined) {
    throw new LstmConfigError('cellClip', "to be set only with activation 'clippedRelu'", options.cellClip);
  }
  const dropout = options.dropout ?? 0;
  if (typeof dropout !== 'number' || !(dropout >= 0 && dropout < 1)) {
    throw new LstmConfigError('dropout', 'a number in [0, 1)', dropout);
  }
  const seed = options.seed ?? 0;
  if (typeof seed !== 'number' || !Number.isInteger(seed)) {
    throw new LstmConfigError('seed', 'an integer', seed);
  }
  return {
    inputSize: positiveInt('inputSize', options.inputSize),
    hiddenSize: positiveInt('hiddenSize', options.hiddenSize),
    numLayers: positiveInt('numLayers', options.numLayers ?? 1),
    bias: bool('bias', options.bias, true),
    batchFirst: bool('batchFirst', options.batchFirst, false),
    dropout,
    bidirectional: bool('bidirectional', options.bidirectional, false),
    activation,
    recurrentActivation,
    cellClip,
    seed,
    forgetBias: bool('forgetBias', options.forgetBias, false),
    orthogonalRecurrent: bool('orthogonalRecurrent', options.orthogonalRecurrent, false),
  };
}

/** PyTorch state-dict names of one layer and direction, in the order `torch.nn.LSTM` lists them. */
export function parameterNames(layer: number, reverse: boolean, bias: boolean): string[] {
  const sfx = `_l${layer}${reverse ? '_reverse' : ''}`;
  const names = [`weight_ih${sfx}`, `weight_hh${sfx}`];
  if (bias) names.push(`bias_ih${sfx}`, `bias_hh${sfx}`);
  return names;
}

/** Every parameter's name and shape, in PyTorch's order. */
export function parameterShapes(cfg: ReluLstmConfig): Array<[string, number[]]> {
  const H = cfg.hiddenSize;
  const D = cfg.bidirectional ? 2 : 1;
  const out: Array<[string, number[]]> = [];
  for (let l = 0; l < cfg.numLayers; l++) {
    const inSize = l === 0 ? cfg.inputSize : H * D;
    for (let d = 0; d < D; d++) {
      const [wih, whh, bih, bhh] = parameterNames(l, d === 1, cfg.bias);
      out.push([wih, [4 * H, inSize]], [whh, [4 * H, H]]);
      if (cfg.bias) out.push([bih, [4 * H]], [bhh, [4 * H]]);
    }
  }
  return out;
}
