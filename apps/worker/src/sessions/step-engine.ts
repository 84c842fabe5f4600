/**
 * The forward pass of a session step, in the worker's own process (session-server.ts loads this
 * module on the first step, so a worker that serves no session never loads TensorFlow.js itself).
 * The job engine is a separate child process, so a training there never delays a step, and a step
 * here costs no IPC: its models stay warm in an LRU of loaded models (MODEL_CACHE_SIZE entries,
 * MODEL_CACHE_MB of weights), keyed by the storage id the session was opened with (a completed
 * job's or a registered version's model file never changes).
 */
import {
  LstmConfigError,
  initBackend,
  resolveBackendPreference,
  type BackendPreference,
  type SequenceModel,
} from '@relu-lstm/lstm';
import type { ArtifactStore, ModelSource, SessionStepResult } from '@relu-lstm/jobs';
import * as tf from '@tensorflow/tfjs-core';
import { StepInputError } from './step-input';
import { ModelCache, modelFromStored, readStoredModel } from '../engine/models';

export interface StepEngineOptions {
  backend: string | undefined;
  artifacts: ArtifactStore;
  modelCacheSize: number;
  modelCacheMb: number;
}

export interface StepInput {
  seq: number;
  modelSource: ModelSource;
  inputs: number[][][];
  state: { h0: number[][][]; c0: number[][][] } | null;
}

export class StepEngine {
  private readonly cache: ModelCache;

  private constructor(private readonly o: StepEngineOptions) {
    // With MODEL_CACHE_SIZE 0, or a model over MODEL_CACHE_MB, each step loads the model (slow but correct).
    this.cache = new ModelCache(o.modelCacheSize, o.modelCacheMb * 2 ** 20);
  }

  static async start(o: StepEngineOptions): Promise<StepEngine> {
    let preference: BackendPreference | undefined;
    try {
      preference = o.backend === undefined ? undefined : resolveBackendPreference(o.backend.toLowerCase());
    } catch (e) {
      if (e instanceof LstmConfigError) throw new LstmConfigError('RELU_LSTM_BACKEND', e.expected, e.actual);
      throw e;
    }
    await initBackend(preference);
    return new StepEngine(o);
  }

  /** One forward pass from `state` (zeros when null); every tensor made here is disposed. */
  async forward(s: StepInput): Promise<SessionStepResult> {
    checkStateBatch(s);
    const { model, owned } = await this.model(s.modelSource);
    const tensors: tf.Tensor[] = [];
    try {
      const x = tf.tensor3d(s.inputs, undefined, 'float32');
      tensors.push(x);
      let state: { h0: tf.Tensor3D; c0: tf.Tensor3D } | undefined;
      if (s.state) {
        state = {
          h0: tf.tensor3d(s.state.h0, undefined, 'float32'),
          c0: tf.tensor3d(s.state.c0, undefined, 'float32'),
        };
        tensors.push(state.h0, state.c0);
      }
      const out = model.predict(x, state, {});
      tensors.push(out.y, out.hN, out.cN);
      const y = out.y.rank === 2 ? tf.expandDims(out.y, 1) : out.y;
      if (y !== out.y) tensors.push(y);
      const [outputs, hN, cN] = await Promise.all([y.array() as Promise<number[][][]>, out.hN.array(), out.cN.array()]);
      return { seq: s.seq, outputs, hN, cN };
    } finally {
      tf.dispose(tensors);
      if (owned) model.dispose();
    }
  }

  /** The model from the cache, else read from its file (and cached unless too big: then the caller disposes it). */
  private async model(source: ModelSource): Promise<{ model: SequenceModel; owned: boolean }> {
    const cached = this.cache.get(source.storeId);
    if (cached) return { model: cached, owned: false };
    const stored = await readStoredModel(this.o.artifacts, source);
    let model: SequenceModel;
    try {
      model = modelFromStored(stored);
    } finally {
      tf.dispose(Object.values(stored.stateDict));
    }
    return { model, owned: !this.cache.put(source.storeId, model) };
  }

  close(): void {
    this.cache.clear();
  }
}

/** The state's batch is that of the inputs, or 1 (broadcast): the batch of a session is fixed by its first step. */
function checkStateBatch(s: StepInput): void {
  const b = s.inputs.length;
  const sb = s.state?.h0[0]?.length ?? 1;
  if (sb !== 1 && sb !== b)
    throw new StepInputError({
      message: `the session's state holds ${sb} sequences; every step feeds the same ${sb}`,
      expected: `shape [${sb}, T, features]`,
      received: `${b} sequences`,
    });
}
