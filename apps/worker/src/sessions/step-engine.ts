/**
 * The forward pass of a session step, in the worker's own process (session-server.ts loads this
 * module on the first step, so a worker that serves no session never loads TensorFlow.js itself).
 * The job engine is a separate child process, so a training there never delays a step, and a step
 * here costs no IPC: its models stay warm in an LRU of loaded models (MODEL_CACHE_SIZE entries,
 * MODEL_CACHE_MB of weights), keyed by the storage id the session was opened with (a completed
 * job's or a registered version's model file never changes).
 */
import type { ArtifactStore, ModelSource, SessionStepResult } from '@relu-lstm/jobs';
import type * as tf from '@tensorflow/tfjs-core';
import { StepInputError } from './step-input';
import { initBackendFromEnv } from '../engine/backend';
import { forwardArrays } from '../engine/forward';
import { ModelCache, loadModel } from '../engine/models';

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
    await initBackendFromEnv(o.backend);
    return new StepEngine(o);
  }

  /** One forward pass from `state` (zeros when null); every tensor made here is disposed. */
  async forward(s: StepInput): Promise<SessionStepResult> {
    checkStateBatch(s);
    const { model, owned } = await loadModel({
      cache: this.cache,
      artifacts: this.o.artifacts,
      source: s.modelSource,
      key: s.modelSource.storeId,
    });
    try {
      const r = await forwardArrays(model, { inputs: s.inputs, initialState: s.state }, readArray);
      return { seq: s.seq, ...r };
    } finally {
      if (owned) model.dispose();
    }
  }

  close(): void {
    this.cache.clear();
  }
}

const readArray = (y: tf.Tensor3D) => y.array();

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
