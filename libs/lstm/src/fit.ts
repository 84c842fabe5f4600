import * as tf from '@tensorflow/tfjs-core';
import { TensorLike, toTensor } from './tensor-like';
import { clipByGlobalNorm, globalNorm } from './clip';
import { FitData, PreparedData, disposeBatch, makeBatch, prepareData } from './dataset';
import { DivergenceError, LstmConfigError, TrainingAbortedError } from './errors';
import { LossName, lossOutputSizeProblem, splitSamples, validationSplitProblem } from './config';
import { checkLossName, computeLoss } from './losses';
import {
  OptimizerConfig,
  ResolvedOptimizerConfig,
  createOptimizer,
  disposeOptimizer,
  readOptimizerSlots,
  resolveOptimizerConfig,
  writeOptimizerSlots,
} from './optimizers';
import { Rng, RngState } from './rng';
import type { LstmState } from './relu-lstm';
import { SequenceModel } from './sequence-model';
import {
  EpochRecord,
  FORMAT,
  FitPosition,
  FitSettings,
  TrainingState,
  VERSION,
  readWeights,
  validated,
} from './training-state';

export interface FitOptions {
  /** Total number of epochs of the run (a resumed run continues up to it, as Keras's initialEpoch does). */
  epochs: number;
  batchSize: number;
  optimizer: OptimizerConfig;
  loss: LossName;
  /** Clip the gradients to this global norm (`clip.ts`). Default: no clipping. */
  clipNorm?: number;
  /**
   * Fraction of the samples held out for validation: the LAST ones, before any shuffling, as Keras's
   * `validation_split` takes them (train on the first floor(N * (1 - split))). Default 0.
   */
  validationSplit?: number;
  /** Seed of the shuffle generator. (The weights' and dropout's seed is the model's.) */
  seed: number;
  /** Shuffle the training samples every epoch (seeded). Default true. */
  shuffle?: boolean;
  /** Checked before every batch (and validation batch); when aborted, fit throws `TrainingAbortedError`. */
  signal?: AbortSignal;
  /** Awaited; see `FitProgress` for when it is called. */
  onProgress?: (p: FitProgress) => void | Promise<void>;
  /** Also report every this many optimizer steps within an epoch. Default: only at the end of epochs. */
  progressEvery?: number;
  /** Awaited with a resumable state every `checkpointEvery` epochs (at epoch ends). */
  onCheckpoint?: (state: TrainingState) => void | Promise<void>;
  /** Default 1. */
  checkpointEvery?: number;
  /**
   * When aborted, first hand `onCheckpoint` a state taken between the two batches (mid-epoch),
   * then throw. Default false.
   */
  checkpointOnAbort?: boolean;
  /** Continue a run from a state `onCheckpoint` received (or one decoded from bytes or JSON). */
  resumeFrom?: TrainingState;
  /**
   * The state every sequence starts from, `{ h0, c0 }` each `[numLayers * numDirections, 1, hiddenSize]`
   * (nested arrays or `{ data, shape }`), broadcast over each batch; zeros when absent. It is a
   * constant, not trained.
   */
  initialState?: { h0: TensorLike; c0: TensorLike };
}

/**
 * Progress of a run. Reported at the end of every epoch (`valLoss` set when there is a validation
 * split) and, with `progressEvery`, every that many steps within an epoch (`valLoss` null).
 */
export interface FitProgress {
  /** 0-based epoch. */
  epoch: number;
  /** Optimizer steps done since the start of the run (1 after the first batch). */
  step: number;
  /** Batches of this epoch done, out of `stepsPerEpoch`. */
  stepInEpoch: number;
  stepsPerEpoch: number;
  /** Mean training loss of this epoch so far (the epoch's mean at its end). */
  loss: number;
  valLoss: number | null;
  /** Mean global gradient norm (before clipping) of this epoch so far. */
  gradNorm: number;
  /** Training samples per second since the previous report (validation time excluded). */
  samplesPerSec: number;
}

export interface FitResult {
  /** Epochs completed (including those before a resume). */
  epochs: number;
  /** Optimizer steps done (including those before a resume). */
  steps: number;
  /** The last epoch's mean training loss and validation loss. */
  loss: number | null;
  valLoss: number | null;
  history: EpochRecord[];
}

interface ResolvedFitOptions {
  epochs: number;
  batchSize: number;
  optimizer: ResolvedOptimizerConfig;
  loss: LossName;
  clipNorm: number | null;
  validationSplit: number;
  seed: number;
  shuffle: boolean;
  signal: AbortSignal | null;
  onProgress: FitOptions['onProgress'] | null;
  progressEvery: number | null;
  onCheckpoint: FitOptions['onCheckpoint'] | null;
  checkpointEvery: number;
  checkpointOnAbort: boolean;
  resumeFrom: TrainingState | null;
  /** Filled in by fit once the model's shape is known. */
  initialState: StartState | null;
}

/** A validated start state as plain values, `[L*D, 1, H]` each (ReluLstm broadcasts it over a batch). */
interface StartState {
  h0: Float32Array;
  c0: Float32Array;
  shape: [number, number, number];
}

const OPTION_NAMES = [
  'epochs',
  'batchSize',
  'optimizer',
  'loss',
  'clipNorm',
  'validationSplit',
  'seed',
  'shuffle',
  'signal',
  'onProgress',
  'progressEvery',
  'onCheckpoint',
  'checkpointEvery',
  'checkpointOnAbort',
  'resumeFrom',
  'initialState',
];

/**
 * Trains `model` on batch-first data (see `FitData`) with minibatch gradient descent.
 *
 * Every step: a forward pass in training mode (dropout on), the loss, gradients of every parameter,
 * the global gradient norm (and clipping), one read of loss and norm back from the device, a check
 * that both are finite, then the update. A non-finite loss or norm throws `DivergenceError(epoch,
 * step, quantity, value)` before the update, so the weights keep their last finite values; `step` is
 * the 0-based global index of the failing step (the number of steps done before it). A non-finite
 * validation loss throws it too (quantity 'loss', `step` the number of steps done).
 *
 * Between two batches fit awaits a macrotask (setImmediate), so timers and I/O on the same event loop
 * (BullMQ's lock renewal) keep running, and checks `signal`: when aborted it throws
 * `TrainingAbortedError(epoch, step)` (the epoch in progress and the number of steps done), leaving
 * the model with the weights of the last completed step. Aborting is an exception rather than a
 * status so that no caller can mistake a stopped run for a finished one; pass `checkpointOnAbort` to
 * get a state to resume from first.
 *
 * Everything is validated before the first step; a bad option throws `LstmConfigError`, bad data
 * `LstmInputError`, each naming the field, what was expected and what came. fit creates (and
 * disposes) its own optimizer; it leaves no tensor behind except the model's updated variables.
 */
export async function fit(model: SequenceModel, data: FitData, options: FitOptions): Promise<FitResult> {
  const opts = resolveFitOptions(options);
  const cfg = model.config;
  opts.initialState = await resolveStartState(model, options.initialState);
  const lossProblem = lossOutputSizeProblem(opts.loss, cfg.outputSize);
  if (lossProblem) throw new LstmConfigError('outputSize', lossProblem, cfg.outputSize);
  const prepared = await prepareData(data, cfg, opts.loss);
  const splitProblem = validationSplitProblem(opts.validationSplit, prepared.n);
  if (splitProblem) throw new LstmConfigError('validationSplit', splitProblem, opts.validationSplit);
  const { train: nTrain, validation: nVal } = splitSamples(prepared.n, opts.validationSplit);
  const settings: FitSettings = {
    loss: opts.loss,
    batchSize: opts.batchSize,
    clipNorm: opts.clipNorm,
    validationSplit: opts.validationSplit,
    shuffle: opts.shuffle,
    seed: opts.seed,
    numSamples: prepared.n,
  };
  if (opts.resumeFrom) checkResumable(opts.resumeFrom, model, settings, opts.optimizer);

  const run = new FitRun(model, prepared, opts, settings, { nTrain, nVal });
  try {
    if (opts.resumeFrom) await run.resume(opts.resumeFrom);
    return await run.epochs();
  } finally {
    run.dispose();
  }
}

/**
 * One run of `fit` past its checks: the parameters, the optimizer and the start state it made, where
 * it is (`pos`), its shuffle generator and the epochs done.
 */
class FitRun {
  private readonly vars: tf.Variable[];
  private readonly paramNames: string[];
  private readonly stepsPerEpoch: number;
  private readonly optimizer: tf.Optimizer;
  /** Made once for the whole run; a batch-1 state is broadcast over each batch by the LSTM itself. */
  private readonly start: LstmState | undefined;
  private shuffleRng: Rng;
  private pos: FitPosition = freshPosition(0, 0);
  private history: EpochRecord[] = [];
  /** Training samples and seconds since the last progress report. */
  private reportSamples = 0;
  private reportSeconds = 0;

  constructor(
    private readonly model: SequenceModel,
    private readonly data: PreparedData,
    private readonly opts: ResolvedFitOptions,
    private readonly settings: FitSettings,
    private readonly split: { nTrain: number; nVal: number },
  ) {
    const params = [...model.parameters()];
    this.paramNames = params.map(([name]) => name);
    this.vars = params.map(([, v]) => v);
    this.stepsPerEpoch = Math.ceil(split.nTrain / opts.batchSize);
    this.optimizer = createOptimizer(opts.optimizer);
    const s = opts.initialState;
    this.start = s ? { h0: tf.tensor3d(s.h0, s.shape), c0: tf.tensor3d(s.c0, s.shape) } : undefined;
    this.shuffleRng = new Rng(opts.seed);
  }

  /** Continues from a checked state: weights, dropout and shuffle generators, optimizer slots, position. */
  async resume(s: TrainingState): Promise<void> {
    this.model.loadStateDict(s.weights);
    this.model.setDropoutRngState(s.rng.dropout);
    await writeOptimizerSlots(this.optimizer, s.optimizer);
    this.shuffleRng = new Rng(s.rng.shuffle);
    this.pos = { ...s.progress, permutation: s.progress.permutation?.slice() ?? null };
    this.history = s.history.map((h) => ({ ...h }));
  }

  async epochs(): Promise<FitResult> {
    while (this.pos.epoch < this.opts.epochs) {
      await this.trainEpoch();
      await this.endEpoch();
    }
    const { history, pos } = this;
    const last = history[history.length - 1];
    return {
      epochs: history.length,
      steps: pos.globalStep,
      loss: last?.loss ?? null,
      valLoss: last?.valLoss ?? null,
      history,
    };
  }

  dispose(): void {
    disposeOptimizer(this.optimizer);
    if (this.start) tf.dispose([this.start.h0, this.start.c0]);
  }

  /** The batches of the current epoch not done yet (all of them unless resumed mid-epoch). */
  private async trainEpoch(): Promise<void> {
    const { pos, opts, stepsPerEpoch } = this;
    const nTrain = this.split.nTrain;
    if (pos.permutation === null) {
      const inOrder = () => Array.from({ length: nTrain }, (_, i) => i);
      pos.permutation = opts.shuffle ? this.shuffleRng.permutation(nTrain) : inOrder();
    }
    const perm = pos.permutation;
    while (pos.stepInEpoch < stepsPerEpoch) {
      await this.stopIfAborted();
      await this.trainBatch(perm.slice(pos.stepInEpoch * opts.batchSize, (pos.stepInEpoch + 1) * opts.batchSize));
      const midEpoch = pos.stepInEpoch < stepsPerEpoch;
      if (opts.progressEvery && midEpoch && pos.globalStep % opts.progressEvery === 0) await this.report(null);
      await tick();
    }
  }

  /** One optimizer step on the samples `indices`, counted into the epoch's sums. */
  private async trainBatch(indices: number[]): Promise<void> {
    const { model, optimizer, vars, data, opts, pos, start } = this;
    const started = now();
    const { loss, gradNorm, positions } = await trainStep({ model, optimizer, vars, data, indices, opts, pos, start });
    const seconds = (now() - started) / 1000;
    pos.stepInEpoch++;
    pos.globalStep++;
    pos.epochLossSum += loss * positions;
    pos.epochPositions += positions;
    pos.epochGradNormSum += gradNorm;
    pos.epochSeconds += seconds;
    this.reportSamples += indices.length;
    this.reportSeconds += seconds;
  }

  /** Validation, the epoch's record and report; then the next epoch, checkpointed every `checkpointEvery`. */
  private async endEpoch(): Promise<void> {
    const pos = this.pos;
    const valStarted = now();
    const valLoss = this.split.nVal > 0 ? await this.validationLoss() : null;
    pos.epochSeconds += (now() - valStarted) / 1000;
    this.history.push({
      epoch: pos.epoch,
      loss: pos.epochLossSum / pos.epochPositions,
      valLoss,
      gradNorm: pos.epochGradNormSum / pos.stepInEpoch,
      steps: pos.stepInEpoch,
      seconds: pos.epochSeconds,
    });
    await this.report(valLoss);
    this.pos = freshPosition(pos.epoch + 1, pos.globalStep);
    const { onCheckpoint, checkpointEvery } = this.opts;
    if (onCheckpoint && this.pos.epoch % checkpointEvery === 0) await onCheckpoint(await this.capture());
  }

  /** Validation loss over samples nTrain..n-1, in batches, weighted by positions (exact mean). */
  private async validationLoss(): Promise<number> {
    const { model, data: d, opts, pos } = this;
    const manyToMany = model.config.head === 'manyToMany';
    let sum = 0;
    let weight = 0;
    for (let start = this.split.nTrain; start < d.n; start += opts.batchSize) {
      await this.stopIfAborted();
      const indices = Array.from({ length: Math.min(opts.batchSize, d.n - start) }, (_, i) => start + i);
      const batch = makeBatch(d, indices, manyToMany);
      try {
        const t = tf.tidy(() => batchLoss(model, batch, opts.loss, false, this.start));
        const v = (await t.data())[0];
        t.dispose();
        if (!Number.isFinite(v)) throw new DivergenceError(pos.epoch, pos.globalStep, 'loss', v);
        const w = positionsOf(d, indices, manyToMany);
        sum += v * w;
        weight += w;
      } finally {
        disposeBatch(batch);
      }
      await tick();
    }
    return sum / weight;
  }

  /** A resumable state of the run as it is now. */
  private async capture(): Promise<TrainingState> {
    const { model, optimizer, opts, pos, history } = this;
    return {
      format: FORMAT,
      version: VERSION,
      model: JSON.parse(JSON.stringify(model.config)) as typeof model.config,
      weights: await readWeights(model),
      optimizer: {
        config: { ...opts.optimizer },
        ...(await readOptimizerSlots(
          optimizer,
          this.vars.map((v) => v.name),
          this.paramNames,
        )),
      },
      settings: { ...this.settings },
      progress: { ...pos, permutation: pos.permutation?.slice() ?? null },
      rng: { shuffle: uint32(this.shuffleRng.state()), dropout: uint32(model.dropoutRngState()) },
      history: history.map((h) => ({ ...h })),
    };
  }

  private async stopIfAborted(): Promise<void> {
    if (!this.opts.signal?.aborted) return;
    if (this.opts.checkpointOnAbort && this.opts.onCheckpoint) await this.opts.onCheckpoint(await this.capture());
    throw new TrainingAbortedError(this.pos.epoch, this.pos.globalStep);
  }

  private async report(valLoss: number | null): Promise<void> {
    const pos = this.pos;
    const p: FitProgress = {
      epoch: pos.epoch,
      step: pos.globalStep,
      stepInEpoch: pos.stepInEpoch,
      stepsPerEpoch: this.stepsPerEpoch,
      loss: pos.epochPositions > 0 ? pos.epochLossSum / pos.epochPositions : NaN,
      valLoss,
      gradNorm: pos.stepInEpoch > 0 ? pos.epochGradNormSum / pos.stepInEpoch : NaN,
      samplesPerSec: this.reportSeconds > 0 ? this.reportSamples / this.reportSeconds : 0,
    };
    this.reportSamples = 0;
    this.reportSeconds = 0;
    await this.opts.onProgress?.(p);
  }
}

interface TrainStepInput {
  model: SequenceModel;
  optimizer: tf.Optimizer;
  vars: tf.Variable[];
  data: PreparedData;
  /** The samples of the batch. */
  indices: number[];
  opts: Pick<ResolvedFitOptions, 'loss' | 'clipNorm'>;
  /** Where the run is, for the `DivergenceError` of a non-finite step. */
  pos: FitPosition;
  start: LstmState | undefined;
}

/** One optimizer step on the samples `indices`; returns the batch loss, pre-clip norm and positions. */
async function trainStep(input: TrainStepInput): Promise<{ loss: number; gradNorm: number; positions: number }> {
  const { model, optimizer, vars, data: d, indices, opts, pos, start } = input;
  const batch = makeBatch(d, indices, model.config.head === 'manyToMany');
  let grads: tf.Tensor[] = [];
  let value: tf.Scalar | null = null;
  let norm: tf.Scalar | null = null;
  try {
    const out = tf.variableGrads(() => batchLoss(model, batch, opts.loss, true, start), vars);
    value = out.value;
    grads = vars.map((v) => out.grads[v.name] ?? tf.zerosLike(v));
    if (opts.clipNorm !== null) {
      const clipped = clipByGlobalNorm(grads, opts.clipNorm);
      tf.dispose(grads);
      grads = clipped.clipped;
      norm = clipped.norm;
    } else {
      norm = globalNorm(grads);
    }
    const both = tf.stack([value, norm]);
    const [loss, gradNorm] = await both.data();
    both.dispose();
    if (!Number.isFinite(loss)) throw new DivergenceError(pos.epoch, pos.globalStep, 'loss', loss);
    if (!Number.isFinite(gradNorm)) throw new DivergenceError(pos.epoch, pos.globalStep, 'gradient', gradNorm);
    optimizer.applyGradients(vars.map((v, i) => ({ name: v.name, tensor: grads[i] })));
    return { loss, gradNorm, positions: positionsOf(d, indices, model.config.head === 'manyToMany') };
  } finally {
    tf.dispose(grads);
    value?.dispose();
    norm?.dispose();
    disposeBatch(batch);
  }
}

/** The loss of the model on a batch-first batch, whatever the model's layout. */
function batchLoss(
  model: SequenceModel,
  batch: ReturnType<typeof makeBatch>,
  loss: LossName,
  training: boolean,
  start: LstmState | undefined,
): tf.Scalar {
  const batchFirst = model.config.lstm.batchFirst;
  const x = batchFirst ? batch.x : (tf.transpose(batch.x, [1, 0, 2]) as tf.Tensor3D);
  const { y, hN, cN } = model.predict(x, start, { training, lengths: batch.lengths });
  hN.dispose();
  cN.dispose();
  const pred = model.config.head === 'manyToMany' && !batchFirst ? tf.transpose(y, [1, 0, 2]) : y;
  return computeLoss(loss, pred, batch.y, batch.mask ?? undefined);
}

/** Positions a batch's mean loss averages over: valid steps (many-to-many) or sequences. */
function positionsOf(d: PreparedData, indices: number[], manyToMany: boolean): number {
  if (!manyToMany) return indices.length;
  if (!d.lengths) return indices.length * d.seqLen;
  return indices.reduce((acc, i) => acc + d.lengths![i], 0);
}

function freshPosition(epoch: number, globalStep: number): FitPosition {
  return {
    epoch,
    stepInEpoch: 0,
    globalStep,
    permutation: null,
    epochLossSum: 0,
    epochPositions: 0,
    epochGradNormSum: 0,
    epochSeconds: 0,
  };
}

function checkResumable(
  state: TrainingState,
  model: SequenceModel,
  settings: FitSettings,
  optimizer: ResolvedOptimizerConfig,
): void {
  validated(state);
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  if (!same(state.model, model.config)) {
    throw new LstmConfigError(
      'model',
      `a model with the checkpoint's config ${JSON.stringify(state.model)}`,
      model.config,
    );
  }
  for (const key of Object.keys(settings) as Array<keyof FitSettings>) {
    if (!same(state.settings[key], settings[key])) {
      const field = key === 'numSamples' ? 'data' : key;
      throw new LstmConfigError(
        field,
        `${JSON.stringify(state.settings[key])}${key === 'numSamples' ? ' samples' : ''}, as in the checkpoint resumed from`,
        settings[key],
      );
    }
  }
  if (!same(state.optimizer.config, optimizer)) {
    throw new LstmConfigError(
      'optimizer',
      `${JSON.stringify(state.optimizer.config)}, as in the checkpoint resumed from`,
      optimizer,
    );
  }
  if (state.progress.permutation !== null) {
    const nTrain = splitSamples(settings.numSamples, settings.validationSplit).train;
    const p = state.progress.permutation;
    const seen = new Set(p);
    if (p.length !== nTrain || seen.size !== nTrain || p.some((i) => i >= nTrain)) {
      throw new LstmConfigError('resumeFrom.progress.permutation', `a permutation of 0..${nTrain - 1}`, p);
    }
  }
}

function resolveFitOptions(options: FitOptions): ResolvedFitOptions {
  if (options === null || typeof options !== 'object') throw new LstmConfigError('options', 'an object', options);
  for (const key of Object.keys(options)) {
    if (!OPTION_NAMES.includes(key))
      throw new LstmConfigError(key, `one of the fit options ${OPTION_NAMES.join(', ')}`, key);
  }
  const posInt = (field: keyof FitOptions, v: unknown) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1)
      throw new LstmConfigError(field, 'a positive integer', v);
    return v;
  };
  const optional = <T>(
    field: keyof FitOptions,
    v: T | undefined,
    check: (v: unknown) => boolean,
    expected: string,
  ): T | null => {
    if (v === undefined || v === null) return null;
    if (!check(v)) throw new LstmConfigError(field, expected, v);
    return v;
  };
  const isFn = (v: unknown) => typeof v === 'function';
  if (typeof options.seed !== 'number' || !Number.isInteger(options.seed))
    throw new LstmConfigError('seed', 'an integer', options.seed);
  const split = options.validationSplit ?? 0;
  const splitProblem = validationSplitProblem(split, null);
  if (splitProblem) throw new LstmConfigError('validationSplit', splitProblem, split);
  return {
    epochs: posInt('epochs', options.epochs),
    batchSize: posInt('batchSize', options.batchSize),
    optimizer: resolveOptimizerConfig(options.optimizer),
    loss: checkLossName(options.loss),
    clipNorm: optional(
      'clipNorm',
      options.clipNorm,
      (v) => typeof v === 'number' && Number.isFinite(v) && v > 0,
      'a finite number > 0',
    ),
    validationSplit: split,
    seed: options.seed,
    shuffle: optional('shuffle', options.shuffle, (v) => typeof v === 'boolean', 'a boolean') ?? true,
    signal: optional(
      'signal',
      options.signal,
      (v) => typeof v === 'object' && v !== null && typeof (v as AbortSignal).aborted === 'boolean',
      'an AbortSignal',
    ),
    onProgress: optional('onProgress', options.onProgress, isFn, 'a function'),
    progressEvery: options.progressEvery === undefined ? null : posInt('progressEvery', options.progressEvery),
    onCheckpoint: optional('onCheckpoint', options.onCheckpoint, isFn, 'a function'),
    checkpointEvery: options.checkpointEvery === undefined ? 1 : posInt('checkpointEvery', options.checkpointEvery),
    checkpointOnAbort:
      optional('checkpointOnAbort', options.checkpointOnAbort, (v) => typeof v === 'boolean', 'a boolean') ?? false,
    resumeFrom: optional('resumeFrom', options.resumeFrom, (v) => typeof v === 'object', 'a TrainingState'),
    initialState: null,
  };
}

/** Checks a start state against the model: shape `[L*D, 1, H]`, finite values. */
async function resolveStartState(model: SequenceModel, given: FitOptions['initialState']): Promise<StartState | null> {
  if (given === undefined || given === null) return null;
  if (typeof given !== 'object') throw new LstmConfigError('initialState', 'an object { h0, c0 }', given);
  const lstm = model.config.lstm;
  const shape: [number, number, number] = [lstm.numLayers * (lstm.bidirectional ? 2 : 1), 1, lstm.hiddenSize];
  const read = async (key: 'h0' | 'c0'): Promise<Float32Array> => {
    let t: tf.Tensor;
    try {
      t = toTensor(`initialState.${key}`, given[key], shape);
    } catch (e) {
      throw new LstmConfigError(
        `initialState.${key}`,
        `shape [${shape.join(', ')}] (numLayers * numDirections, 1, hiddenSize)`,
        (e as Error).message,
      );
    }
    let data: Float32Array;
    try {
      data = (await t.data()) as Float32Array;
    } finally {
      t.dispose();
    }
    if (!data.every(Number.isFinite))
      throw new LstmConfigError(`initialState.${key}`, 'finite values', 'NaN or Infinity');
    return Float32Array.from(data);
  };
  return { h0: await read('h0'), c0: await read('c0'), shape };
}

const now = () => performance.now();

/** Generator words as unsigned integers (sfc32 keeps some as signed int32; both mean the same state). */
function uint32(state: RngState): RngState {
  return state.map((w) => w >>> 0) as RngState;
}

/** Resolves on the next macrotask turn, after pending I/O and timers (setImmediate on Node). */
function tick(): Promise<void> {
  return new Promise((resolve) =>
    typeof setImmediate === 'function' ? setImmediate(resolve) : setTimeout(resolve, 0),
  );
}
