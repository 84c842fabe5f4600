/**
 * One training run inside the engine: build the model (fresh, from `fromJob`'s weights, or from the
 * job's checkpoint), load the data, run the library's `fit`, stream progress and checkpoints to the
 * parent, and produce the final files (`model.safetensors` bytes and the `state.json` text).
 */
import {
  DivergenceError,
  SequenceModel,
  TrainingAbortedError,
  decodeTrainingState,
  encodeTrainingState,
  fit,
  splitSamples,
  stateDictToSafetensors,
  type FitOptions,
  type FitProgress,
  type FitResult,
  type OptimizerConfig,
  type TrainingState,
} from '@relu-lstm/lstm';
import {
  MODEL_METADATA_KEY,
  STATE_INPUT_INLINE_MAX,
  type ArtifactStore,
  type DatasetStore,
  type ModelArtifactConfig,
  type ProgressEvent,
  type StateArtifact,
  type ModelSource,
  type TrainPayload,
  ARTIFACTS,
  StateArtifactSchema,
} from '@relu-lstm/jobs';
import * as tf from '@tensorflow/tfjs-core';
import { firstSamples, loadTrainingData, type LoadedData } from './data';
import { PayloadError, toJobError } from './errors';
import { checkSameArchitecture, ownBytes, readStoredModel, sequenceModelOptions } from './models';
import type { BackendSummary, FromEngine, TerminalMessage, TrainFiles, TrainRequest, TrainStart } from './protocol';
import { divergenceFailure, nonFiniteInState, nonFiniteWeight, rollbackTarget, type RollbackPoint } from './divergence';

export interface EngineContext {
  artifacts: ArtifactStore;
  datasets: DatasetStore;
  backend: BackendSummary;
  /** Sends a message to the parent; resolves once it is handed to the IPC channel. */
  send(m: FromEngine): Promise<void>;
}

export interface StopControl {
  signal: AbortSignal;
  /** Whether the stop asked for a checkpoint first (shutdown) or not (cancel). */
  checkpointOnStop(): boolean;
}

/** What a run carries from step to step; a failure reads the rollbacks and learning rate from it. */
interface RunState {
  /** Disposed when the run ends (replaced when a rollback starts over from the initial weights). */
  model: SequenceModel | null;
  learningRate: number;
  rollbacks: number;
  /**
   * The newest state that trained without a non-finite loss or gradient: the last periodic
   * checkpoint of this run, else the resumed checkpoint; null: the seeded / fromJob weights. Kept
   * in memory: it is the very state sent to the parent as that checkpoint.
   */
  lastGood: RollbackPoint;
}

/** What the run found before training: its data, where it starts, and the split. */
interface RunStart {
  loaded: LoadedData;
  resume: TrainingState | null;
  init: TrainStart['init'];
  start: StartState | null;
  nTrain: number;
  stepsPerEpoch: number;
}

/** One attempt's training, from its request to the parent's terminal message. */
interface TrainRun {
  req: TrainRequest;
  ctx: EngineContext;
  stop: StopControl;
  run: RunState;
  begun: RunStart;
  /** Wall time of the job so far, earlier attempts included. */
  elapsed: () => number;
}

export async function runTrain(req: TrainRequest, ctx: EngineContext, stop: StopControl): Promise<TerminalMessage> {
  const run: RunState = { model: null, learningRate: req.payload.training.learningRate, rollbacks: 0, lastGood: null };
  try {
    const begun = await beginRun(req, ctx, run);
    const attemptStart = performance.now();
    const elapsed = () => req.elapsedBeforeMs + (performance.now() - attemptStart);
    const train: TrainRun = { req, ctx, stop, run, begun, elapsed };
    const result = await fitWithRollbacks(train);
    return await trainedMessage(train, result, performance.now() - attemptStart);
  } catch (e) {
    const { runId } = req;
    if (e instanceof TrainingAbortedError) return { kind: 'stopped', runId, epoch: e.epoch, step: e.step };
    if (e instanceof DivergenceError) {
      return { kind: 'failed', runId, error: divergenceFailure(e, run.rollbacks, run.learningRate) };
    }
    return { kind: 'failed', runId, error: toJobError(e) };
  } finally {
    run.model?.dispose();
  }
}

/** Loads the data, builds the model (resumed, fromJob or seeded) into `run`, and tells the parent. */
async function beginRun(req: TrainRequest, ctx: EngineContext, run: RunState): Promise<RunStart> {
  const { payload: p } = req;
  const t = p.training;
  const loaded = await loadTrainingData(p, ctx.datasets);
  const resume = await readCheckpoint(req, ctx);
  // A resumed run's weights come from its checkpoint: the seeded model is only their shape.
  run.model = resume
    ? new SequenceModel(sequenceModelOptions(p.model, t.seed))
    : await initialModel(req, ctx.artifacts);
  if (resume) {
    // A checkpoint written after a divergence rollback carries the reduced learning rate: keep it.
    run.learningRate = resume.optimizer.config.learningRate;
    run.lastGood = { state: resume, checkpoint: false };
  }
  const nTrain = splitSamples(loaded.samples, t.validationSplit).train;
  const begun: RunStart = {
    loaded,
    resume,
    init: resume ? 'checkpoint' : req.modelSource ? 'fromJob' : 'seed',
    start: await startStateOf(req, ctx.artifacts),
    nTrain,
    stepsPerEpoch: Math.ceil(nTrain / t.batchSize),
  };
  const progress = resume?.progress;
  await ctx.send({
    kind: 'started',
    runId: req.runId,
    resumedFrom: progress
      ? { epoch: progress.epoch, step: progress.globalStep, stepInEpoch: progress.stepInEpoch }
      : null,
    epochs: t.epochs,
    stepsPerEpoch: begun.stepsPerEpoch,
    trainSamples: nTrain,
    validationSamples: loaded.samples - nTrain,
    init: begun.init,
  });
  return begun;
}

/** The job's checkpoint to resume from, or null (none asked for, or unreadable: start over). */
async function readCheckpoint(req: TrainRequest, ctx: EngineContext): Promise<TrainingState | null> {
  if (!req.resumeFrom) return null;
  try {
    return decodeTrainingState(ownBytes(await ctx.artifacts.get(req.jobId, req.resumeFrom)));
  } catch (e) {
    const message = `checkpoint ${req.resumeFrom} could not be read, starting over: ${(e as Error).message}`;
    await ctx.send({ kind: 'log', runId: req.runId, level: 'warning', code: 'checkpoint_unreadable', message });
    return null;
  }
}

/** The model as the job starts it: seeded from the payload, then `fromJob`'s (or `from`'s) weights if any. */
async function initialModel(req: TrainRequest, artifacts: ArtifactStore): Promise<SequenceModel> {
  const p = req.payload;
  const m = new SequenceModel(sequenceModelOptions(p.model, p.training.seed));
  if (!req.modelSource) return m;
  const stored = await readStoredModel(artifacts, req.modelSource);
  try {
    checkSameArchitecture(p.model, stored.config, req.modelSource.field);
    m.loadStateDict(stored.stateDict);
  } catch (e) {
    m.dispose();
    throw e;
  } finally {
    tf.dispose(Object.values(stored.stateDict));
  }
  return m;
}

/** The state every sequence starts from: the payload's, or the final state of the fromJob (or from) run. */
async function startStateOf(req: TrainRequest, artifacts: ArtifactStore): Promise<StartState | null> {
  const p = req.payload;
  if (p.initialState) return { source: 'initialState', h0: p.initialState.h0, c0: p.initialState.c0 };
  return req.modelSource ? await fromJobState(artifacts, req.modelSource) : null;
}

/**
 * The library's `fit`, rolled back to the last good state with a smaller learning rate on each
 * divergence, up to `req.divergence.retries` times.
 */
async function fitWithRollbacks(train: TrainRun): Promise<FitResult> {
  for (;;) {
    try {
      return await fitOnce(train);
    } catch (e) {
      if (!(e instanceof DivergenceError) || train.run.rollbacks >= train.req.divergence.retries) throw e;
      await rollBack(train, e);
    }
  }
}

async function fitOnce(train: TrainRun): Promise<FitResult> {
  const model = train.run.model!;
  const result = await fit(model, train.begun.loaded.data, fitOptions(train));
  // The run's last update has not been checked by a later step: the weights must be finite.
  const bad = await nonFiniteWeight(model);
  if (bad) {
    throw new DivergenceError(Math.max(0, result.epochs - 1), Math.max(0, result.steps - 1), 'weights', bad.value);
  }
  return result;
}

/** `fit`'s options for the next try: from the last good state, progress and checkpoints to the parent. */
function fitOptions({ req, ctx, stop, run, begun, elapsed }: TrainRun): FitOptions {
  const t = req.payload.training;
  const { runId } = req;
  const from = run.lastGood?.state ?? null;
  const learningRate = run.learningRate;
  return {
    epochs: t.epochs,
    batchSize: t.batchSize,
    optimizer: optimizerAt(t, learningRate),
    loss: t.loss,
    ...(t.clipNorm !== undefined ? { clipNorm: t.clipNorm } : {}),
    validationSplit: t.validationSplit,
    seed: t.seed,
    signal: stop.signal,
    progressEvery: req.progressEvery,
    onProgress: async (fp: FitProgress) => {
      const point = progressPoint(fp, elapsed(), learningRate);
      if (point) await ctx.send({ kind: 'progress', runId, point });
    },
    // checkpointEvery 0 means "no periodic checkpoints"; fit still gets the callback for a checkpoint
    // on a shutdown stop (its interval then never comes round).
    checkpointEvery: t.checkpointEvery > 0 ? t.checkpointEvery : t.epochs + 1,
    checkpointOnAbort: true,
    onCheckpoint: async (state: TrainingState) => {
      if (stop.signal.aborted && !stop.checkpointOnStop()) return;
      // Never keep (or write) a state the last update blew up: diverge here instead.
      const bad = nonFiniteInState(state);
      const { epoch, globalStep, stepInEpoch } = state.progress;
      if (bad) {
        const badEpoch = Math.max(0, epoch - (stepInEpoch === 0 ? 1 : 0));
        throw new DivergenceError(badEpoch, Math.max(0, globalStep - 1), 'weights', bad.value);
      }
      if (!stop.signal.aborted) run.lastGood = { state, checkpoint: true };
      const bytes = encodeTrainingState(state);
      await ctx.send({ kind: 'checkpoint', runId, epoch, step: globalStep, stepInEpoch, bytes });
    },
    ...(from ? { resumeFrom: rollbackTarget(from, learningRate) } : {}),
    ...(begun.start ? { initialState: { h0: begun.start.h0, c0: begun.start.c0 } } : {}),
  };
}

/** Lowers the learning rate for the next try and tells the parent where the run goes back to. */
async function rollBack({ req, ctx, run }: TrainRun, e: DivergenceError): Promise<void> {
  run.rollbacks++;
  const previous = run.learningRate;
  run.learningRate = previous * req.divergence.lrFactor;
  const good = run.lastGood;
  const at = good?.state.progress;
  const to = { epoch: at?.epoch ?? 0, step: at?.globalStep ?? 0, stepInEpoch: at?.stepInEpoch ?? 0 };
  // Without a good state to load, start over from the job's initial weights (same seed).
  if (!good) {
    run.model!.dispose();
    run.model = null;
    run.model = await initialModel(req, ctx.artifacts);
  }
  await ctx.send({
    kind: 'rollback',
    runId: req.runId,
    rollback: {
      epoch: e.epoch,
      step: e.step,
      quantity: e.quantity,
      value: String(e.value),
      to: { ...to, source: good ? (good.checkpoint ? 'checkpoint' : 'resumed') : 'start' },
      previousLearningRate: previous,
      learningRate: run.learningRate,
      retry: run.rollbacks,
      retries: req.divergence.retries,
    },
  });
}

function optimizerAt(t: TrainPayload['training'], learningRate: number): OptimizerConfig {
  return { name: t.optimizer, learningRate, ...(t.momentum !== undefined ? { momentum: t.momentum } : {}) };
}

/** The parent's `trained` message: the summary and the files of the job's artifact set. */
async function trainedMessage(train: TrainRun, result: FitResult, trainMs: number): Promise<TerminalMessage> {
  const { req, run, begun } = train;
  const t = req.payload.training;
  const { loaded, resume, nTrain } = begun;
  const model = run.model!;
  const startEpoch = resume?.progress.epoch ?? 0;
  const ran = result.history.filter((h) => h.epoch >= startEpoch);
  const seconds = ran.reduce((a, h) => a + h.seconds, 0);
  const samples = ran.length * nTrain - (resume ? resume.progress.stepInEpoch * t.batchSize : 0);
  const state = await finalState(model, req, loaded, begun.start);
  const modelBytes = await modelSafetensors(model, req);
  return {
    kind: 'trained',
    runId: req.runId,
    summary: {
      epochs: result.epochs,
      steps: result.steps,
      finalLoss: finiteOrNull(result.loss),
      finalValLoss: finiteOrNull(result.valLoss),
      samplesPerSec: seconds > 0 ? Math.max(samples, 0) / seconds : 0,
      elapsedMs: train.elapsed(),
      trainMs,
    },
    files: {
      model: modelBytes,
      state: JSON.stringify(state),
      resolved: resolvedConfig(train, result),
    },
  };
}

/** The library's resolved configuration, for `config.json`: what the run actually used. */
function resolvedConfig({ req, run, begun }: TrainRun, result: FitResult): TrainFiles['resolved'] {
  const t = req.payload.training;
  const { loaded, resume, nTrain } = begun;
  const model = run.model!;
  return {
    sequenceModel: model.config,
    optimizer: {
      ...optimizerAt(t, run.learningRate),
      requestedLearningRate: t.learningRate,
      divergenceRollbacks: run.rollbacks,
    },
    fit: {
      epochs: t.epochs,
      batchSize: t.batchSize,
      loss: t.loss,
      clipNorm: t.clipNorm ?? null,
      validationSplit: t.validationSplit,
      seed: t.seed,
      shuffle: true,
      progressEvery: req.progressEvery,
      checkpointEvery: t.checkpointEvery,
    },
    data: {
      description: loaded.description,
      samples: loaded.samples,
      seqLen: loaded.seqLen,
      trainSamples: nTrain,
      validationSamples: loaded.samples - nTrain,
      stepsPerEpoch: begun.stepsPerEpoch,
    },
    init: begun.init,
    resumedFrom: resume ? { epoch: resume.progress.epoch, step: resume.progress.globalStep } : null,
    history: result.history,
  };
}

/** `model.safetensors`: the weights under PyTorch's names, the job's model config as metadata. */
async function modelSafetensors(model: SequenceModel, req: TrainRequest): Promise<Uint8Array> {
  const modelConfig: ModelArtifactConfig = {
    jobId: req.jobId,
    model: req.payload.model,
    sequenceModel: JSON.parse(JSON.stringify(model.config)) as ModelArtifactConfig['sequenceModel'],
  };
  const dict = model.stateDict();
  try {
    return await stateDictToSafetensors(dict, { format: 'pt', [MODEL_METADATA_KEY]: JSON.stringify(modelConfig) });
  } finally {
    tf.dispose(Object.values(dict));
  }
}

/** A metric point for the job's stream, or null when the library had nothing finite to report. */
function progressPoint(fp: FitProgress, elapsedMs: number, learningRate: number): ProgressEvent | null {
  if (!Number.isFinite(fp.loss)) return null;
  return {
    epoch: fp.epoch,
    step: fp.step,
    loss: fp.loss,
    valLoss: finiteOrNull(fp.valLoss),
    gradNorm: finiteOrNull(fp.gradNorm),
    samplesPerSec: Number.isFinite(fp.samplesPerSec) ? Math.max(0, fp.samplesPerSec) : 0,
    elapsedMs: Math.max(0, Math.round(elapsedMs)),
    epochEnd: fp.stepInEpoch === fp.stepsPerEpoch,
    learningRate,
  };
}

function finiteOrNull(v: number | null | undefined): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

/** `state.json`: the trained model's (h_n, c_n) after reading the payload's stateInput, or the first batch. */
async function finalState(
  model: SequenceModel,
  req: TrainRequest,
  loaded: LoadedData,
  start: StartState | null,
): Promise<StateArtifact> {
  const p = req.payload;
  const given = p.stateInput;
  const inputs = given ? given.inputs : firstSamples(loaded.data.x, p.training.batchSize);
  const lengths = given
    ? given.lengths
    : loaded.data.lengths
      ? Array.from(loaded.data.lengths as ArrayLike<number>).slice(0, inputs.length)
      : undefined;
  const B = inputs.length;
  const T = inputs[0].length;
  const I = inputs[0][0].length;
  const xt = tf.tensor3d(inputs, [B, T, I], 'float32');
  let out: ReturnType<SequenceModel['predict']> | null = null;
  try {
    // `[L*D, 1, H]`, broadcast over the B inputs by the LSTM.
    const state = start ? { h0: tf.tensor3d(start.h0), c0: tf.tensor3d(start.c0) } : undefined;
    try {
      out = model.predict(xt, state, lengths ? { lengths } : {});
    } finally {
      if (state) tf.dispose([state.h0, state.c0]);
    }
    const [hN, cN] = await Promise.all([out.hN.array(), out.cN.array()]);
    return {
      jobId: req.jobId,
      h_n: hN,
      c_n: cN,
      shapes: { h_n: out.hN.shape.slice(), c_n: out.cN.shape.slice() },
      input: {
        source: given ? 'stateInput' : 'firstBatch',
        description: given
          ? (given.description ?? `the job's stateInput: ${B} sequences of ${T} steps`)
          : `the first ${B} samples of the training data (unshuffled) of ${loaded.description}`,
        shape: [B, T, I],
        lengths: lengths ? [...lengths] : null,
        inputs: B * T * I <= STATE_INPUT_INLINE_MAX ? inputs : null,
        ...(given ? {} : { samples: [0, B] as [number, number] }),
      },
      initialState: start ? start.source : 'zeros',
    };
  } finally {
    xt.dispose();
    if (out) tf.dispose([out.y, out.hN, out.cN]);
  }
}

/** A start state `[L*D, 1, H]` and where it came from. */
interface StartState {
  source: 'initialState' | 'fromJob';
  h0: number[][][];
  c0: number[][][];
}

/**
 * The final state of an earlier train job, as `fromJob` promises: row 0 of its `state.json`
 * (`[L*D, B, H]` -> `[L*D, 1, H]`), which the model was just checked to match in shape.
 */
async function fromJobState(artifacts: ArtifactStore, source: ModelSource): Promise<StartState> {
  let parsed: StateArtifact;
  try {
    parsed = StateArtifactSchema.parse(
      JSON.parse(Buffer.from(await artifacts.get(source.storeId, ARTIFACTS.state)).toString('utf8')),
    );
  } catch (e) {
    throw new PayloadError(
      `${source.field}: ${ARTIFACTS.state} of ${source.label} is missing or unreadable (${(e as Error).message})`,
      source.field,
    );
  }
  const row0 = (t: number[][][]) => t.map((layer) => [layer[0]]);
  return { source: 'fromJob', h0: row0(parsed.h_n), c0: row0(parsed.c_n) };
}
