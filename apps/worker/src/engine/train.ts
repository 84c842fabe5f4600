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
  ARTIFACTS,
  StateArtifactSchema,
} from '@relu-lstm/jobs';
import * as tf from '@tensorflow/tfjs-core';
import { firstSamples, loadTrainingData, type LoadedData } from './data';
import { PayloadError, toJobError } from './errors';
import { checkSameArchitecture, ownBytes, readStoredModel, sequenceModelOptions } from './models';
import type { BackendSummary, FromEngine, TerminalMessage, TrainRequest, TrainStart } from './protocol';
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

export async function runTrain(req: TrainRequest, ctx: EngineContext, stop: StopControl): Promise<TerminalMessage> {
  const { runId, jobId, payload: p } = req;
  const t = p.training;
  let model: SequenceModel | null = null;
  let rollbacks = 0;
  let learningRate = t.learningRate;
  try {
    const loaded = await loadTrainingData(p, ctx.datasets);
    /** The model as the job starts it: seeded from the payload, then `fromJob`'s weights if any. */
    const buildModel = async (): Promise<SequenceModel> => {
      const m = new SequenceModel(sequenceModelOptions(p.model, t.seed));
      if (p.fromJob) {
        const stored = await readStoredModel(ctx.artifacts, p.fromJob, 'fromJob');
        try {
          checkSameArchitecture(p.model, stored.config, 'fromJob');
          m.loadStateDict(stored.stateDict);
        } catch (e) {
          m.dispose();
          throw e;
        } finally {
          tf.dispose(Object.values(stored.stateDict));
        }
      }
      return m;
    };
    let resume: TrainingState | null = null;
    if (req.resumeFrom) {
      try {
        resume = decodeTrainingState(ownBytes(await ctx.artifacts.get(jobId, req.resumeFrom)));
      } catch (e) {
        await ctx.send({ kind: 'log', runId, level: 'warning', code: 'checkpoint_unreadable', message: `checkpoint ${req.resumeFrom} could not be read, starting over: ${(e as Error).message}` });
      }
    }
    // A resumed run's weights come from its checkpoint: the seeded model is only their shape.
    model = resume ? new SequenceModel(sequenceModelOptions(p.model, t.seed)) : await buildModel();
    const init: TrainStart['init'] = resume ? 'checkpoint' : p.fromJob ? 'fromJob' : 'seed';
    // A checkpoint written after a divergence rollback carries the reduced learning rate: keep it.
    if (resume) learningRate = resume.optimizer.config.learningRate;
    // The state every sequence starts from: the payload's, or the final state of the fromJob run.
    const start: StartState | null = p.initialState
      ? { source: 'initialState', h0: p.initialState.h0, c0: p.initialState.c0 }
      : p.fromJob
        ? await fromJobState(ctx.artifacts, p.fromJob)
        : null;

    const nTrain = splitSamples(loaded.samples, t.validationSplit).train;
    const stepsPerEpoch = Math.ceil(nTrain / t.batchSize);
    const startEpoch = resume?.progress.epoch ?? 0;
    const startStep = resume?.progress.globalStep ?? 0;
    await ctx.send({
      kind: 'started',
      runId,
      resumedFrom: resume ? { epoch: resume.progress.epoch, step: resume.progress.globalStep, stepInEpoch: resume.progress.stepInEpoch } : null,
      epochs: t.epochs,
      stepsPerEpoch,
      trainSamples: nTrain,
      validationSamples: loaded.samples - nTrain,
      init,
    });

    const optimizerAt = (lr: number): OptimizerConfig => ({ name: t.optimizer, learningRate: lr, ...(t.momentum !== undefined ? { momentum: t.momentum } : {}) });
    const attemptStart = performance.now();
    const elapsed = () => req.elapsedBeforeMs + (performance.now() - attemptStart);
    // The divergence guard rolls back to the newest state that trained without a non-finite loss or
    // gradient: the last periodic checkpoint of this run, else where the run started (the resumed
    // checkpoint, or the seeded / fromJob weights). Kept in memory: it is the very state sent to the
    // parent as that checkpoint.
    let lastGood: RollbackPoint = resume ? { state: resume, checkpoint: false } : null;
    let result: FitResult;
    for (;;) {
      const from = lastGood?.state ?? null;
      try {
        result = await fit(model, loaded.data, {
          epochs: t.epochs,
          batchSize: t.batchSize,
          optimizer: optimizerAt(learningRate),
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
            if (bad) throw new DivergenceError(Math.max(0, state.progress.epoch - (state.progress.stepInEpoch === 0 ? 1 : 0)), Math.max(0, state.progress.globalStep - 1), 'weights', bad.value);
            if (!stop.signal.aborted) lastGood = { state, checkpoint: true };
            const bytes = encodeTrainingState(state);
            const { epoch, globalStep, stepInEpoch } = state.progress;
            await ctx.send({ kind: 'checkpoint', runId, epoch, step: globalStep, stepInEpoch, bytes });
          },
          ...(from ? { resumeFrom: rollbackTarget(from, learningRate) } : {}),
          ...(start ? { initialState: { h0: start.h0, c0: start.c0 } } : {}),
        });
        // The run's last update has not been checked by a later step: the weights must be finite.
        const bad = await nonFiniteWeight(model);
        if (bad) throw new DivergenceError(Math.max(0, result.epochs - 1), Math.max(0, result.steps - 1), 'weights', bad.value);
        break;
      } catch (e) {
        if (!(e instanceof DivergenceError) || rollbacks >= req.divergence.retries) throw e;
        rollbacks++;
        const previous = learningRate;
        learningRate = previous * req.divergence.lrFactor;
        const to = lastGood ? { epoch: lastGood.state.progress.epoch, step: lastGood.state.progress.globalStep, stepInEpoch: lastGood.state.progress.stepInEpoch } : { epoch: 0, step: 0, stepInEpoch: 0 };
        // Without a good state to load, start over from the job's initial weights (same seed).
        if (!lastGood) {
          model.dispose();
          model = null;
          model = await buildModel();
        }
        await ctx.send({
          kind: 'rollback',
          runId,
          rollback: {
            epoch: e.epoch,
            step: e.step,
            quantity: e.quantity,
            value: String(e.value),
            to: { ...to, source: lastGood ? (lastGood.checkpoint ? 'checkpoint' : 'resumed') : 'start' },
            previousLearningRate: previous,
            learningRate,
            retry: rollbacks,
            retries: req.divergence.retries,
          },
        });
      }
    }
    const trainMs = performance.now() - attemptStart;

    const ran = result.history.filter((h) => h.epoch >= startEpoch);
    const seconds = ran.reduce((a, h) => a + h.seconds, 0);
    const samples = ran.length * nTrain - (resume ? resume.progress.stepInEpoch * t.batchSize : 0);
    const state = await finalState(model, req, loaded, start);
    const modelConfig: ModelArtifactConfig = { jobId, model: p.model, sequenceModel: JSON.parse(JSON.stringify(model.config)) };
    const dict = model.stateDict();
    let modelBytes: Uint8Array;
    try {
      modelBytes = await stateDictToSafetensors(dict, { format: 'pt', [MODEL_METADATA_KEY]: JSON.stringify(modelConfig) });
    } finally {
      tf.dispose(Object.values(dict));
    }
    return {
      kind: 'trained',
      runId,
      summary: {
        epochs: result.epochs,
        steps: result.steps,
        finalLoss: finiteOrNull(result.loss),
        finalValLoss: finiteOrNull(result.valLoss),
        samplesPerSec: seconds > 0 ? Math.max(samples, 0) / seconds : 0,
        elapsedMs: elapsed(),
        trainMs,
      },
      files: {
        model: modelBytes,
        state: JSON.stringify(state),
        resolved: {
          sequenceModel: model.config,
          optimizer: { ...optimizerAt(learningRate), requestedLearningRate: t.learningRate, divergenceRollbacks: rollbacks },
          fit: { epochs: t.epochs, batchSize: t.batchSize, loss: t.loss, clipNorm: t.clipNorm ?? null, validationSplit: t.validationSplit, seed: t.seed, shuffle: true, progressEvery: req.progressEvery, checkpointEvery: t.checkpointEvery },
          data: { description: loaded.description, samples: loaded.samples, seqLen: loaded.seqLen, trainSamples: nTrain, validationSamples: loaded.samples - nTrain, stepsPerEpoch },
          init,
          resumedFrom: resume ? { epoch: startEpoch, step: startStep } : null,
          history: result.history,
        },
      },
    };
  } catch (e) {
    if (e instanceof TrainingAbortedError) return { kind: 'stopped', runId, epoch: e.epoch, step: e.step };
    if (e instanceof DivergenceError) return { kind: 'failed', runId, error: divergenceFailure(e, rollbacks, learningRate) };
    return { kind: 'failed', runId, error: toJobError(e) };
  } finally {
    model?.dispose();
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
async function finalState(model: SequenceModel, req: TrainRequest, loaded: LoadedData, start: StartState | null): Promise<StateArtifact> {
  const p = req.payload;
  const given = p.stateInput;
  const inputs = given ? given.inputs : firstSamples(loaded.data.x, p.training.batchSize);
  const lengths = given ? given.lengths : loaded.data.lengths ? Array.from(loaded.data.lengths as ArrayLike<number>).slice(0, inputs.length) : undefined;
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
          ? given.description ?? `the job's stateInput: ${B} sequences of ${T} steps`
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
async function fromJobState(artifacts: ArtifactStore, jobId: string): Promise<StartState> {
  let parsed: StateArtifact;
  try {
    parsed = StateArtifactSchema.parse(JSON.parse(Buffer.from(await artifacts.get(jobId, ARTIFACTS.state)).toString('utf8')));
  } catch (e) {
    throw new PayloadError(`fromJob: ${ARTIFACTS.state} of job ${jobId} is missing or unreadable (${(e as Error).message})`, 'fromJob');
  }
  const row0 = (t: number[][][]) => t.map((layer) => [layer[0]]);
  return { source: 'fromJob', h0: row0(parsed.h_n), c0: row0(parsed.c_n) };
}
