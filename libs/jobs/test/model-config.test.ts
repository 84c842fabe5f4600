/**
 * The job schemas and the library apply the same model rules, because the schemas call the
 * library's (`@relu-lstm/lstm/config`): a payload the api accepts, the library trains; one it refuses,
 * the library refuses too. Checked by running both on the same inputs, not by comparing lists.
 */
import { execFileSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import {
  LOSS_NAMES,
  LstmConfigError,
  OPTIMIZER_NAMES,
  SequenceModel,
  fit,
  resolveOptimizerConfig,
} from '@relu-lstm/lstm';
import { contract, validate, type TrainPayloadInput } from '@relu-lstm/jobs';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const FIT = { epochs: 1, batchSize: 4, optimizer: { name: 'sgd', learningRate: 0.1 }, loss: 'mse', seed: 0 } as const;

/** An inline train payload of `n` one-step samples. */
function payload(n: number, validationSplit: number): TrainPayloadInput {
  const x = Array.from({ length: n }, (_, i) => [[i / n]]);
  return {
    model: { inputSize: 1, hiddenSize: 2, outputSize: 1 },
    data: { inline: { x, y: x } },
    training: { epochs: 1, batchSize: 4, optimizer: 'sgd', learningRate: 0.1, validationSplit },
  };
}

/** Whether the library trains on what the payload describes (false when it throws LstmConfigError). */
async function libraryTrains(p: TrainPayloadInput): Promise<boolean> {
  const x = (p.data.inline!.x as number[][][]).flat(2);
  const n = x.length;
  const tensorsBefore = tf.memory().numTensors;
  const model = new SequenceModel({ lstm: { inputSize: 1, hiddenSize: 2, batchFirst: true }, outputSize: 1 });
  try {
    const tensor = { data: Float32Array.from(x), shape: [n, 1, 1] };
    await fit(model, { x: tensor, y: tensor }, { ...FIT, validationSplit: p.training.validationSplit });
    return true;
  } catch (e) {
    if (e instanceof LstmConfigError && e.field === 'validationSplit') return false;
    throw e;
  } finally {
    model.dispose();
    expect(tf.memory().numTensors).toBe(tensorsBefore);
  }
}

describe('validation split: the api schema and fit agree', () => {
  // [samples, split]: the issue's case (4, 0.2) first; then edges of floor(n * (1 - split)).
  const CASES: Array<[number, number]> = [
    [4, 0.2],
    [1, 0.5],
    [2, 0.5],
    [2, 0.6],
    [3, 0.34],
    [10, 0.95],
    [10, 0.9],
    [5, 0.99],
    [1, 0],
    [7, 0.999],
  ];

  test.each(CASES)('%i samples, split %f', async (n, split) => {
    const p = payload(n, split);
    const accepted = validate(contract.TrainPayload, p).ok;
    expect(accepted).toBe(await libraryTrains(p));
  });

  test('4 samples with split 0.2 are accepted and trained (3 train, 1 validates)', async () => {
    expect(validate(contract.TrainPayload, payload(4, 0.2)).ok).toBe(true);
    expect(await libraryTrains(payload(4, 0.2))).toBe(true);
  });

  test('the cases include refusals on both sides, so the agreement is not vacuous', async () => {
    expect(validate(contract.TrainPayload, payload(1, 0.5)).ok).toBe(false);
    expect(await libraryTrains(payload(1, 0.5))).toBe(false);
  });

  test('synthetic data is checked against its sample count too', () => {
    const p = { ...payload(1, 0.6), data: { synthetic: { kind: 'sine' as const, samples: 2, seqLen: 3 } } };
    const r = validate(contract.TrainPayload, p);
    expect(r.ok ? [] : r.issues).toContainEqual(
      expect.objectContaining({
        path: 'training.validationSplit',
        expected: 'a split leaving at least one of the 2 samples for training',
        received: '0.6',
      }),
    );
  });
});

describe('cellClip: one rule', () => {
  const model = (m: Record<string, unknown>) => ({
    ...payload(2, 0),
    model: { inputSize: 1, hiddenSize: 2, outputSize: 1, ...m },
  });
  const libraryAccepts = (m: Record<string, unknown>) => {
    try {
      new SequenceModel({ lstm: { inputSize: 1, hiddenSize: 2, ...m }, outputSize: 1 }).dispose();
      return true;
    } catch (e) {
      if (e instanceof LstmConfigError) return false;
      throw e;
    }
  };
  test.each([
    [{ activation: 'clippedRelu' }],
    [{ activation: 'clippedRelu', cellClip: 2 }],
    [{ activation: 'clippedRelu', cellClip: 0 }],
    [{ activation: 'clippedRelu', cellClip: -1 }],
    [{ activation: 'relu', cellClip: 2 }],
    [{ activation: 'relu' }],
  ])('%j', (m) => {
    expect(validate(contract.TrainPayload, model(m)).ok).toBe(libraryAccepts(m));
  });
});

describe('optimizer settings and loss classes: one rule each', () => {
  test.each(OPTIMIZER_NAMES.map((name) => [name]))('momentum with %s', (name) => {
    const p = payload(2, 0);
    p.training = { ...p.training, optimizer: name, momentum: 0.5 };
    let libraryAccepts = true;
    try {
      resolveOptimizerConfig({ name, learningRate: 0.1, momentum: 0.5 });
    } catch (e) {
      if (!(e instanceof LstmConfigError)) throw e;
      libraryAccepts = false;
    }
    expect(validate(contract.TrainPayload, p).ok).toBe(libraryAccepts);
  });

  const lossCases = LOSS_NAMES.flatMap((loss) => [[loss, 1] as const, [loss, 2] as const]);
  test.each(lossCases)('loss %s with outputSize %i', async (loss, outputSize) => {
    const p = payload(2, 0);
    p.model = { ...p.model, outputSize };
    p.training = { ...p.training, loss };
    const y = outputSize === 1 ? [[[1]], [[0]]] : [[[1, 0]], [[0, 1]]];
    p.data = { inline: { x: [[[0.1]], [[0.2]]], y } };
    const model = new SequenceModel({ lstm: { inputSize: 1, hiddenSize: 2, batchFirst: true }, outputSize });
    let libraryTrains = true;
    try {
      await fit(model, { x: [[[0.1]], [[0.2]]], y }, { ...FIT, loss });
    } catch (e) {
      if (!(e instanceof LstmConfigError)) throw e;
      libraryTrains = false;
    } finally {
      model.dispose();
    }
    expect(validate(contract.TrainPayload, p).ok).toBe(libraryTrains);
  });
});

test('the config entry and the job contract load without TensorFlow.js (built packages, a fresh node)', () => {
  const script =
    "require('@relu-lstm/lstm/config'); require('@relu-lstm/jobs'); " +
    "console.log(Object.keys(require.cache).filter((k) => k.includes('@tensorflow')).length)";
  expect(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' }).trim()).toBe('0');
  // Negative control: the library's main entry does load it.
  const main =
    "require('@relu-lstm/lstm'); console.log(Object.keys(require.cache).some((k) => k.includes('@tensorflow')))";
  expect(execFileSync(process.execPath, ['-e', main], { encoding: 'utf8' }).trim()).toBe('true');
});
