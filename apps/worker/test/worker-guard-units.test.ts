/**
 * The divergence guard's and retention's pure parts of the worker, imported directly: their
 * configuration, the state a rollback resumes from and the final `diverged` error.
 */
import * as tf from '@tensorflow/tfjs-core';
import { DivergenceError, SequenceModel, type TrainingState } from '@relu-lstm/lstm';
import { JobErrorSchema } from '@relu-lstm/jobs';
import { WorkerConfigError, loadWorkerConfig } from '../src/config';
import { divergenceFailure, nonFiniteInState, nonFiniteWeight, rollbackTarget } from '../src/engine/divergence';

describe('divergence and retention configuration', () => {
  it('defaults to 3 rollbacks, a factor of 0.5 and a sweep every minute', () => {
    const c = loadWorkerConfig({});
    expect(c.divergence).toEqual({ retries: 3, lrFactor: 0.5 });
    expect(c.retentionSweepMs).toBe(60_000);
  });

  it('reads and bounds DIVERGENCE_RETRIES, DIVERGENCE_LR_FACTOR and RETENTION_SWEEP_MS', () => {
    const c = loadWorkerConfig({ DIVERGENCE_RETRIES: '0', DIVERGENCE_LR_FACTOR: '0.25', RETENTION_SWEEP_MS: '0' });
    expect(c.divergence).toEqual({ retries: 0, lrFactor: 0.25 });
    expect(c.retentionSweepMs).toBe(0);
    let err: unknown;
    try {
      loadWorkerConfig({ DIVERGENCE_RETRIES: '-1', DIVERGENCE_LR_FACTOR: '1', RETENTION_SWEEP_MS: 'soon' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(WorkerConfigError);
    const text = (err as WorkerConfigError).problems.join('\n');
    for (const v of ['DIVERGENCE_RETRIES', 'DIVERGENCE_LR_FACTOR', 'RETENTION_SWEEP_MS']) expect(text).toContain(v);
    expect(() => loadWorkerConfig({ DIVERGENCE_LR_FACTOR: '0' })).toThrow(/DIVERGENCE_LR_FACTOR/);
  });
});

describe('rollbackTarget', () => {
  it('changes only the learning rate, in a copy', () => {
    const state = {
      format: 'relu-lstm-training-state',
      version: 1,
      optimizer: {
        config: { name: 'adam', learningRate: 0.1, beta1: 0.9, beta2: 0.999, epsilon: 1e-7 },
        iterations: 7,
        slots: [],
      },
      progress: { epoch: 2, globalStep: 8, stepInEpoch: 0 },
    } as unknown as TrainingState;
    const target = rollbackTarget(state, 0.05);
    expect(target.optimizer.config).toEqual({
      name: 'adam',
      learningRate: 0.05,
      beta1: 0.9,
      beta2: 0.999,
      epsilon: 1e-7,
    });
    expect(target.progress).toBe(state.progress);
    expect((target.optimizer as unknown as { iterations: number }).iterations).toBe(7);
    expect(state.optimizer.config.learningRate).toBe(0.1);
  });
});

describe('divergenceFailure', () => {
  it("is a permanent 'diverged' error naming the epoch, the step and the rollbacks", () => {
    const e = divergenceFailure(new DivergenceError(4, 17, 'gradient', Infinity), 3, 0.125);
    expect(JobErrorSchema.parse(e)).toEqual({
      code: 'diverged',
      retryable: false,
      message: 'training diverged at epoch 4, step 17: gradient is Infinity (after 3 rollbacks, learning rate 0.125)',
      details: { epoch: 4, step: 17, quantity: 'gradient', value: 'Infinity', rollbacks: 3, learningRate: 0.125 },
    });
    expect(divergenceFailure(new DivergenceError(0, 0, 'loss', NaN), 0, 1).message).toBe(
      'training diverged at epoch 0, step 0: loss is NaN',
    );
  });
});

describe('non-finite weights and optimizer slots', () => {
  const state = (w: number, m: number) =>
    ({
      weights: {
        weight_ih_l0: { shape: [2], data: Float32Array.of(0.5, w) },
        'head.bias': { shape: [1], data: Float32Array.of(0) },
      },
      optimizer: {
        config: { name: 'adam', learningRate: 1 },
        iterations: 1,
        slots: [{ name: 'weight_ih_l0/v', shape: [1], data: Float32Array.of(m) }],
      },
    }) as unknown as TrainingState;

  it('finds the first non-finite number of a captured state, in the weights or the slots', () => {
    expect(nonFiniteInState(state(1, 2))).toBeNull();
    expect(nonFiniteInState(state(Infinity, 2))).toEqual({ name: 'weight_ih_l0', value: Infinity });
    expect(nonFiniteInState(state(1, NaN))).toEqual({ name: 'weight_ih_l0/v', value: NaN });
  });

  it("finds a model's non-finite weight", async () => {
    const model = new SequenceModel({
      lstm: { inputSize: 1, hiddenSize: 2, batchFirst: true, seed: 1 },
      outputSize: 1,
    });
    try {
      expect(await nonFiniteWeight(model)).toBeNull();
      const bias = model.parameters().get('head.bias')!;
      bias.assign(tf.tensor1d([NaN]));
      expect(await nonFiniteWeight(model)).toEqual({ name: 'head.bias', value: NaN });
    } finally {
      model.dispose();
    }
  });

  it("names a weight in the error's message", () => {
    expect(new DivergenceError(1, 9, 'weights', Infinity).message).toBe(
      'training diverged at epoch 1, step 9: a weight is Infinity',
    );
  });
});
