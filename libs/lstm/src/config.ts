/**
 * The model configuration in one module, free of TensorFlow.js (`@relu-lstm/lstm/config`): the names
 * every process validates against (activations, heads, optimizers, losses), the rules between fields
 * (cellClip, validation split), the option types and their resolution. `@relu-lstm/jobs` builds its
 * payload schemas from these, so the api, the worker and the library accept the same things.
 */
import { LstmConfigError } from './errors';

/** Activation of the cell candidate `g` and of the cell output `activation(c)`. */
export const ACTIVATIONS = ['relu', 'tanh', 'relu6', 'clippedRelu', 'linear'] as const;
export type Activation = (typeof ACTIVATIONS)[number];

/** Activation of the input, forget and output gates. hardSigmoid is tfjs's: clip(0.2x + 0.5, 0, 1). */
export const RECURRENT_ACTIVATIONS = ['sigmoid', 'hardSigmoid'] as const;
export type RecurrentActivation = (typeof RECURRENT_ACTIVATIONS)[number];

/**
 * How the linear head reads the LSTM:
 *   manyToMany  every step: y [batch, seq, outputSize] ([seq, batch, outputSize] without batchFirst);
 *               steps past a sequence's length get the head's bias (the LSTM outputs zeros there),
 *               so losses over padded batches must mask them (`fit` does).
 *   lastStep    one vector per sequence: y [batch, outputSize] from the last layer's final hidden
 *               state of each direction (its slice of hN): the output at each sequence's last valid
 *               step (its `lengths` entry, else the last step) for the forward direction, and the
 *               state after reading the whole sequence back to step 0 for the reverse direction.
 */
export const HEADS = ['manyToMany', 'lastStep'] as const;
export type Head = (typeof HEADS)[number];

/** The optimizers `fit` can use; all are tfjs-core's `tf.train` implementations (optimizers.ts). */
export const OPTIMIZER_NAMES = ['sgd', 'momentum', 'adam', 'rmsprop'] as const;
export type OptimizerName = (typeof OPTIMIZER_NAMES)[number];

/** The settings each optimizer takes besides its name (optimizers.ts fills their defaults). */
export const OPTIMIZER_FIELDS = {
  sgd: ['learningRate'],
  momentum: ['learningRate', 'momentum', 'nesterov'],
  adam: ['learningRate', 'beta1', 'beta2', 'epsilon'],
  rmsprop: ['learningRate', 'decay', 'momentum', 'epsilon'],
} as const satisfies Record<OptimizerName, readonly string[]>;

/** Whether optimizer `name` takes the setting `field`. */
export function optimizerTakes(name: OptimizerName, field: string): boolean {
  return (OPTIMIZER_FIELDS[name] as readonly string[]).includes(field);
}

/** The training losses (losses.ts). */
export const LOSS_NAMES = ['mse', 'softmaxCrossEntropy'] as const;
export type LossName = (typeof LOSS_NAMES)[number];

/** The loss rule: softmaxCrossEntropy needs at least 2 classes. Returns what is expected of `outputSize`, else null. */
export function lossOutputSizeProblem(loss: LossName, outputSize: number): string | null {
  return loss === 'softmaxCrossEntropy' && outputSize < 2 ? "at least 2 classes with loss 'softmaxCrossEntropy'" : null;
}

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

/** A half-open interval [min, below). */
export interface Fraction {
  min: number;
  below: number;
}

/** The fractions among the settings: dropout probability and validation split, both in [0, 1). */
export const FRACTIONS = {
  dropout: { min: 0, below: 1 },
  validationSplit: { min: 0, below: 1 },
} as const satisfies Record<string, Fraction>;

/** Whether `v` is a number in the interval `r`. */
export function inFraction(r: Fraction, v: unknown): v is number {
  return typeof v === 'number' && v >= r.min && v < r.below;
}

const showFraction = (r: Fraction) => `a number in [${r.min}, ${r.below})`;

/** Defaults of the optional options and of the head, for the library and the job schemas alike. */
export const MODEL_DEFAULTS = {
  numLayers: 1,
  bias: true,
  batchFirst: false,
  dropout: 0,
  bidirectional: false,
  activation: 'relu',
  recurrentActivation: 'sigmoid',
  seed: 0,
  forgetBias: false,
  orthogonalRecurrent: false,
  head: 'manyToMany',
} as const satisfies Required<Omit<ReluLstmOptions, 'inputSize' | 'hiddenSize' | 'cellClip'>> & { head: Head };

const LSTM_OPTION_NAMES: readonly string[] = Object.keys({
  inputSize: true,
  hiddenSize: true,
  numLayers: true,
  bias: true,
  batchFirst: true,
  dropout: true,
  bidirectional: true,
  activation: true,
  recurrentActivation: true,
  cellClip: true,
  seed: true,
  forgetBias: true,
  orthogonalRecurrent: true,
} satisfies Record<keyof ReluLstmOptions, true>);

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
  for (const key of Object.keys(options)) {
    if (!LSTM_OPTION_NAMES.includes(key))
      throw new LstmConfigError(key, `one of the options ${LSTM_OPTION_NAMES.join(', ')}`, key);
  }
  const activation = options.activation ?? MODEL_DEFAULTS.activation;
  if (!ACTIVATIONS.includes(activation)) {
    throw new LstmConfigError('activation', `one of ${ACTIVATIONS.join(', ')}`, activation);
  }
  const recurrentActivation = options.recurrentActivation ?? MODEL_DEFAULTS.recurrentActivation;
  if (!RECURRENT_ACTIVATIONS.includes(recurrentActivation)) {
    throw new LstmConfigError('recurrentActivation', `one of ${RECURRENT_ACTIVATIONS.join(', ')}`, recurrentActivation);
  }
  const clipProblem = cellClipProblem(activation, options.cellClip);
  if (clipProblem) throw new LstmConfigError('cellClip', clipProblem, options.cellClip);
  const cellClip = options.cellClip ?? null;
  const dropout = options.dropout ?? MODEL_DEFAULTS.dropout;
  if (!inFraction(FRACTIONS.dropout, dropout)) {
    throw new LstmConfigError('dropout', showFraction(FRACTIONS.dropout), dropout);
  }
  const seed = options.seed ?? MODEL_DEFAULTS.seed;
  if (typeof seed !== 'number' || !Number.isInteger(seed)) {
    throw new LstmConfigError('seed', 'an integer', seed);
  }
  return {
    inputSize: positiveInt('inputSize', options.inputSize),
    hiddenSize: positiveInt('hiddenSize', options.hiddenSize),
    numLayers: positiveInt('numLayers', options.numLayers ?? MODEL_DEFAULTS.numLayers),
    bias: bool('bias', options.bias, MODEL_DEFAULTS.bias),
    batchFirst: bool('batchFirst', options.batchFirst, MODEL_DEFAULTS.batchFirst),
    dropout,
    bidirectional: bool('bidirectional', options.bidirectional, MODEL_DEFAULTS.bidirectional),
    activation,
    recurrentActivation,
    cellClip,
    seed,
    forgetBias: bool('forgetBias', options.forgetBias, MODEL_DEFAULTS.forgetBias),
    orthogonalRecurrent: bool('orthogonalRecurrent', options.orthogonalRecurrent, MODEL_DEFAULTS.orthogonalRecurrent),
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

/**
 * The cellClip rule: required (a finite number > 0) with activation 'clippedRelu', absent otherwise.
 * Returns what is expected of `cellClip` when it breaks the rule, else null.
 */
export function cellClipProblem(activation: Activation, cellClip: unknown): string | null {
  if (activation === 'clippedRelu') {
    const ok = typeof cellClip === 'number' && Number.isFinite(cellClip) && cellClip > 0;
    return ok ? null : "a finite number > 0 (required with activation 'clippedRelu', its ceiling)";
  }
  return cellClip === undefined ? null : "no cellClip unless activation is 'clippedRelu'";
}

/**
 * How samples split into training and validation, as Keras's `validation_split`: the first
 * floor(n * (1 - split)) train, the rest (the last ones, before any shuffling) validate.
 */
export function splitSamples(n: number, validationSplit: number): { train: number; validation: number } {
  const train = Math.floor(n * (1 - validationSplit));
  return { train, validation: n - train };
}

/**
 * The validation split rule: a number in [0, 1) that leaves at least one of the `n` samples for
 * training (`n` null when not known yet: only the range is checked). Returns what is expected of
 * `validationSplit` when it breaks the rule, else null.
 */
export function validationSplitProblem(validationSplit: unknown, n: number | null): string | null {
  if (!inFraction(FRACTIONS.validationSplit, validationSplit)) return showFraction(FRACTIONS.validationSplit);
  if (n !== null && splitSamples(n, validationSplit).train < 1) {
    return `a split leaving at least one of the ${n} samples for training`;
  }
  return null;
}

// ---------------------------------------------------------------------------------------------------
// The sequence model: the LSTM plus a linear head.

export interface SequenceModelOptions {
  /** The LSTM's options; a resolved `ReluLstmConfig` (e.g. from a checkpoint) is accepted too. */
  lstm: ReluLstmOptions | ReluLstmConfig;
  outputSize: number;
  /** Default 'manyToMany'. */
  head?: Head;
}

/** Options with defaults filled in: JSON-serialisable, what checkpoints and model artifacts store. */
export interface SequenceModelConfig {
  lstm: ReluLstmConfig;
  outputSize: number;
  head: Head;
}

/** Validates `SequenceModelOptions` and fills defaults; throws `LstmConfigError` naming the field. */
export function resolveSequenceModelConfig(options: SequenceModelOptions): SequenceModelConfig {
  if (options === null || typeof options !== 'object')
    throw new LstmConfigError('options', 'an object { lstm, outputSize, head? }', options);
  for (const key of Object.keys(options)) {
    if (!['lstm', 'outputSize', 'head'].includes(key))
      throw new LstmConfigError(key, 'one of the options lstm, outputSize, head', key);
  }
  const { outputSize } = options;
  if (typeof outputSize !== 'number' || !Number.isInteger(outputSize) || outputSize < 1) {
    throw new LstmConfigError('outputSize', 'a positive integer', outputSize);
  }
  const head = options.head ?? MODEL_DEFAULTS.head;
  if (!HEADS.includes(head)) throw new LstmConfigError('head', `one of ${HEADS.join(', ')}`, head);
  if (options.lstm === null || typeof options.lstm !== 'object')
    throw new LstmConfigError('lstm', 'ReluLstm options', options.lstm);
  let lstm: ReluLstmConfig;
  try {
    lstm = resolveConfig(lstmOptions(options.lstm));
  } catch (e) {
    if (e instanceof LstmConfigError) throw new LstmConfigError(`lstm.${e.field}`, e.expected, e.actual);
    throw e;
  }
  return { lstm, outputSize, head };
}

/** ReluLstm options from options or a resolved config (whose `cellClip` is null when unused). */
export function lstmOptions(o: ReluLstmOptions | ReluLstmConfig): ReluLstmOptions {
  const { cellClip, ...rest } = o;
  return cellClip === null || cellClip === undefined ? rest : { ...rest, cellClip };
}

/**
 * A sequence model described flat: the LSTM's options but its data layout and seed, beside the
 * head's. The form of a job payload's `model` (`@relu-lstm/jobs` checks its schema against it).
 */
export type FlatModelOptions = Omit<ReluLstmOptions, 'batchFirst' | 'seed'> & { outputSize: number; head: Head };

/** The library's options for a flat model description, with the layout and seed it leaves out. */
export function sequenceModelOptions(
  model: FlatModelOptions,
  extra: Pick<ReluLstmOptions, 'batchFirst' | 'seed'>,
): SequenceModelOptions {
  const { outputSize, head, ...lstm } = model;
  return { lstm: lstmOptions({ ...lstm, ...extra }), outputSize, head };
}

/**
 * The fields two models must share for the weights of one to load into the other (continuing a
 * training, inferring with a stored model): every parameter's shape follows from them.
 */
export const ARCHITECTURE = [
  'inputSize',
  'hiddenSize',
  'numLayers',
  'bias',
  'bidirectional',
  'outputSize',
  'head',
] as const satisfies ReadonlyArray<keyof FlatModelOptions>;
export type ArchitectureField = (typeof ARCHITECTURE)[number];
