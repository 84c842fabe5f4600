/**
 * The job cost budget's pure parts: the estimate's parameter count against the library's real
 * models, the worker's refusal, how engine errors map to `resource_exhausted`, the loss check of a
 * completed training and the configuration of all of it.
 */
import * as tf from '@tensorflow/tfjs-core';
import { SequenceModel } from '@relu-lstm/lstm';
import {
  DEFAULT_LIMITS,
  contract,
  estimateJobCost,
  jobCostIssue,
  parameterCount,
  type ModelSpec,
  type ProgressEvent,
} from '@relu-lstm/jobs';
import { loadWorkerConfig } from '../src/config';
import { toJobError } from '../src/engine/errors';
import { EngineOutOfMemoryError, exitedOfHeapLimit } from '../src/engine/memory-watchdog';
import { sequenceModelOptions } from '../src/engine/models';
import { budgetRefusal, engineRunFailure } from '../src/jobs/job-budget';
import { lossBlowup } from '../src/jobs/loss-check';

const spec = (m: Partial<ModelSpec>): ModelSpec =>
  contract.ModelSpec.parse({ inputSize: 3, hiddenSize: 5, outputSize: 2, ...m });

describe('estimateJobCost', () => {
  it.each([
    [{}],
    [{ numLayers: 3 }],
    [{ bidirectional: true, numLayers: 2 }],
    [{ bias: false, hiddenSize: 7 }],
    [{ head: 'lastStep' as const, outputSize: 4 }],
  ])('counts the parameters of the library model %j', (m) => {
    const before = tf.memory().numTensors;
    const model = new SequenceModel(sequenceModelOptions(spec(m), 0));
    const real = [...model.parameters().values()].reduce((a, v) => a + v.size, 0);
    model.dispose();
    expect(parameterCount(spec(m))).toBe(real);
    expect(tf.memory().numTensors).toBe(before);
  });

  const train = (model: Partial<ModelSpec>, extra: { seqLen?: number; batchSize?: number } = {}) =>
    contract.TrainPayload.parse({
      model: { inputSize: 1, outputSize: 1, hiddenSize: 16, ...model },
      data: { synthetic: { kind: 'sine', samples: 256, seqLen: extra.seqLen ?? 20 } },
      training: { epochs: 1, batchSize: extra.batchSize ?? 32 },
    });

  it('grows with the model, the sequence length and the batch', () => {
    const base = estimateJobCost({ type: 'train', payload: train({}) }).memoryBytes;
    expect(estimateJobCost({ type: 'train', payload: train({ hiddenSize: 256 }) }).memoryBytes).toBeGreaterThan(base);
    expect(estimateJobCost({ type: 'train', payload: train({}, { seqLen: 2000 }) }).memoryBytes).toBeGreaterThan(base);
    expect(estimateJobCost({ type: 'train', payload: train({}, { batchSize: 256 }) }).memoryBytes).toBeGreaterThan(
      base,
    );
  });

  it('refuses hiddenSize 4096 x 16 layers under the default bound, naming the estimate and the bound', () => {
    const issue = jobCostIssue({ type: 'train', payload: train({ hiddenSize: 4096, numLayers: 16 }) }, 4096);
    expect(issue).toMatchObject({
      path: 'model',
      code: 'too_big',
      expected: 'an estimated engine memory of at most 4096 MB (LIMIT_MAX_JOB_MEMORY_MB)',
    });
    expect(jobCostIssue({ type: 'train', payload: train({}) }, 4096)).toBeNull();
  });

  it('the worker refuses the same job with resource_exhausted, and cannot size an infer naming a trained model', () => {
    expect(
      budgetRefusal(
        { type: 'train', tenant: 't', limits: DEFAULT_LIMITS, payload: train({ hiddenSize: 4096, numLayers: 16 }) },
        4096,
      ),
    ).toMatchObject({ code: 'resource_exhausted' });
    expect(budgetRefusal({ type: 'train', tenant: 't', limits: DEFAULT_LIMITS, payload: train({}) }, 4096)).toBeNull();
    const infer = contract.InferPayload.parse({ modelJobId: '00000000-0000-4000-8000-000000000001', inputs: [[[1]]] });
    expect(budgetRefusal({ type: 'infer', tenant: 't', limits: DEFAULT_LIMITS, payload: infer }, 64)).toBeNull();
  });
});

describe('resource_exhausted', () => {
  it('from the watchdog, the V8 heap and allocation failures in the engine; not retried', () => {
    expect(engineRunFailure(new EngineOutOfMemoryError('resident set', 400, 401 * 1024 ** 2))).toMatchObject({
      code: 'resource_exhausted',
      retryable: false,
      details: { limitMb: 400, rssMb: 401 },
    });
    expect(engineRunFailure(new Error('the engine process exited (SIGKILL) during the run'))).toMatchObject({
      code: 'internal',
    });
    expect(exitedOfHeapLimit('SIGABRT', null)).toBe(true);
    expect(exitedOfHeapLimit(null, 0)).toBe(false);
    expect(toJobError(new RangeError('Array buffer allocation failed'))).toMatchObject({
      code: 'resource_exhausted',
      retryable: false,
    });
    expect(toJobError(new RangeError('Invalid string length'))).toMatchObject({ code: 'resource_exhausted' });
    expect(toJobError(new RangeError('Maximum call stack size exceeded'))).toMatchObject({ code: 'internal' });
  });
});

describe('lossBlowup', () => {
  const point = (epoch: number, loss: number, epochEnd = false): ProgressEvent => ({
    epoch,
    step: epoch * 10,
    loss,
    valLoss: null,
    gradNorm: null,
    samplesPerSec: 1,
    elapsedMs: 1,
    ...(epochEnd ? { epochEnd } : {}),
  });
  const metrics = [point(0, 5), point(0, 2, true), point(1, 1, true)];

  it("flags a final loss past the factor times the first epoch's, or not finite", () => {
    expect(lossBlowup(metrics, 21, 10)).toMatchObject({ firstEpochLoss: 2, finalLoss: 21, factor: 10 });
    expect(lossBlowup(metrics, 8.8e11, 10)?.message).toMatch(/more than 10 times the first epoch's 2/);
    expect(lossBlowup(metrics, NaN, 10)?.message).toMatch(/not a finite number/);
  });

  it('passes a final loss within the factor', () => {
    expect(lossBlowup(metrics, 19, 10)).toBeNull();
    expect(lossBlowup(metrics, 0.1, 10)).toBeNull();
    expect(lossBlowup([], null, 10)).toBeNull();
  });
});

describe('configuration', () => {
  it('defaults: the api bound, a 200 ms watchdog, 2 s to stop on cancel, factor 10', () => {
    const c = loadWorkerConfig({});
    expect(c.memory).toEqual({ maxJobMb: 4096, pollMs: 200 });
    expect(c.cancelKillMs).toBe(2000);
    expect(c.divergedLossFactor).toBe(10);
  });

  it('reads LIMIT_MAX_JOB_MEMORY_MB, ENGINE_MEMORY_POLL_MS, CANCEL_KILL_MS, DIVERGED_LOSS_FACTOR and bounds them', () => {
    const c = loadWorkerConfig({
      LIMIT_MAX_JOB_MEMORY_MB: '512',
      ENGINE_MEMORY_POLL_MS: '50',
      CANCEL_KILL_MS: '0',
      DIVERGED_LOSS_FACTOR: '3',
    });
    expect([c.memory.maxJobMb, c.memory.pollMs, c.cancelKillMs, c.divergedLossFactor]).toEqual([512, 50, 0, 3]);
    expect(() => loadWorkerConfig({ LIMIT_MAX_JOB_MEMORY_MB: '0' })).toThrow(/LIMIT_MAX_JOB_MEMORY_MB/);
    expect(() => loadWorkerConfig({ DIVERGED_LOSS_FACTOR: '1' })).toThrow(/DIVERGED_LOSS_FACTOR/);
  });
});
