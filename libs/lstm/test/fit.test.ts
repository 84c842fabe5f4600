/**
 * fit's contract: progress reports, yielding to the event loop, abort between batches, divergence,
 * validation of inputs and options, masking of padded steps, layouts, classification, no leaks.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { DivergenceError, LstmConfigError, LstmInputError, TrainingAbortedError } from '../src/errors';
import { FitOptions, FitProgress, fit } from '../src/fit';
import { oneHot } from '../src/losses';
import type { SequenceModelOptions } from '../src/config';
import { SequenceModel } from '../src/sequence-model';
import { addingProblem, sineForecast, toNestedArray } from '../src/synthetic';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const SMALL: SequenceModelOptions = { lstm: { inputSize: 1, hiddenSize: 4, batchFirst: true, seed: 3 }, outputSize: 1 };
const data = sineForecast({ samples: 10, seqLen: 4, seed: 2 });
const BASE: FitOptions = {
  epochs: 2,
  batchSize: 4,
  optimizer: { name: 'sgd', learningRate: 0.05 },
  loss: 'mse',
  seed: 1,
};

function weightsOf(model: SequenceModel): number[] {
  return [...model.parameters().values()].flatMap((v) => Array.from(v.dataSync()));
}

test('progress: every progressEvery steps within an epoch and at each epoch end, with valLoss only there', async () => {
  const model = new SequenceModel(SMALL);
  const reports: FitProgress[] = [];
  const result = await fit(model, data, {
    ...BASE,
    validationSplit: 0.2,
    progressEvery: 1,
    onProgress: async (p) => {
      await new Promise((r) => setTimeout(r, 1)); // an async callback is awaited
      reports.push(p);
    },
  });
  // 8 training samples, batches of 4: 2 steps per epoch; the last step of an epoch reports once, with valLoss.
  expect(reports.map((p) => [p.epoch, p.step, p.stepInEpoch, p.valLoss === null])).toEqual([
    [0, 1, 1, true],
    [0, 2, 2, false],
    [1, 3, 1, true],
    [1, 4, 2, false],
  ]);
  for (const p of reports) {
    expect(p.stepsPerEpoch).toBe(2);
    expect(Number.isFinite(p.loss) && Number.isFinite(p.gradNorm) && p.samplesPerSec > 0).toBe(true);
  }
  expect(result).toMatchObject({ epochs: 2, steps: 4, loss: reports[3].loss, valLoss: reports[3].valLoss });
  expect(result.history.map((h) => h.epoch)).toEqual([0, 1]);
  expect(result.history[1]).toMatchObject({
    loss: reports[3].loss,
    valLoss: reports[3].valLoss,
    gradNorm: reports[3].gradNorm,
    steps: 2,
  });
  model.dispose();
});

test('yields to the event loop between batches', async () => {
  const model = new SequenceModel(SMALL);
  let turns = 0;
  let running = true;
  const spin = () => {
    turns++;
    if (running) setImmediate(spin);
  };
  setImmediate(spin);
  const result = await fit(model, data, { ...BASE, batchSize: 1, epochs: 1 });
  running = false;
  expect(result.steps).toBe(10);
  expect(turns).toBeGreaterThanOrEqual(10);
  model.dispose();
});

test('abort: stops between batches with TrainingAbortedError naming epoch and step; the model keeps the last step', async () => {
  const controller = new AbortController();
  const model = new SequenceModel(SMALL);
  const steps: number[] = [];
  const run = fit(model, data, {
    ...BASE,
    batchSize: 2,
    epochs: 3,
    progressEvery: 1,
    signal: controller.signal,
    onProgress: (p) => {
      steps.push(p.step);
      if (p.step === 3) controller.abort();
    },
  });
  await expect(run).rejects.toBeInstanceOf(TrainingAbortedError);
  await expect(run).rejects.toMatchObject({ code: 'aborted', epoch: 0, step: 3 });
  expect(steps).toEqual([1, 2, 3]);
  // Same weights as a run of exactly three steps.
  const three = new SequenceModel(SMALL);
  const ctl = new AbortController();
  await fit(three, data, {
    ...BASE,
    batchSize: 2,
    epochs: 1,
    progressEvery: 1,
    signal: ctl.signal,
    onProgress: (p) => void (p.step === 3 && ctl.abort()),
  }).catch(() => undefined);
  expect(weightsOf(model)).toEqual(weightsOf(three));

  // Already aborted: nothing runs.
  const fresh = new SequenceModel(SMALL);
  const before = weightsOf(fresh);
  const done = new AbortController();
  done.abort();
  await expect(fit(fresh, data, { ...BASE, signal: done.signal })).rejects.toMatchObject({ epoch: 0, step: 0 });
  expect(weightsOf(fresh)).toEqual(before);
  [model, three, fresh].forEach((m) => m.dispose());
});

test('divergence: an absurd learning rate without clipping stops with DivergenceError at a named epoch and step', async () => {
  const model = new SequenceModel({ ...SMALL, lstm: { ...SMALL.lstm, hiddenSize: 8 } });
  const base = tf.memory().numTensors;
  let lastGood = null as FitProgress | null; // assigned in a callback: keep the declared type
  const err = await fit(model, data, {
    ...BASE,
    epochs: 50,
    batchSize: 2,
    optimizer: { name: 'sgd', learningRate: 1e6 },
    progressEvery: 1,
    onProgress: (p) => void (lastGood = p),
  }).catch((e) => e);
  expect(err).toBeInstanceOf(DivergenceError);
  expect(err.code).toBe('diverged');
  expect(['loss', 'gradient']).toContain(err.quantity);
  expect(Number.isFinite(err.value)).toBe(false);
  // The failing step is the one after the last reported (step counts are 1-based there, 0-based here).
  expect(err.step).toBe(lastGood ? lastGood.step : 0);
  expect(err.epoch).toBe(Math.floor(err.step / 5));
  expect(err.message).toMatch(new RegExp(`epoch ${err.epoch}, step ${err.step}: (loss|gradient) is (NaN|Infinity)`));
  expect(tf.memory().numTensors).toBe(base);
  model.dispose();
});

test('divergence: a NaN weight stops the first step on its loss, before any update', async () => {
  const model = new SequenceModel(SMALL);
  const bias = model.parameters().get('head.bias')!;
  bias.assign(tf.tensor1d([NaN]));
  const err = await fit(model, data, BASE).catch((e) => e);
  expect(err).toBeInstanceOf(DivergenceError);
  expect(err).toMatchObject({ epoch: 0, step: 0, quantity: 'loss' });
  expect(err.value).toBeNaN();
  model.dispose();
});

test('clipNorm bounds every update: with clipping the absurd learning rate no longer sees a non-finite gradient norm first', async () => {
  const model = new SequenceModel(SMALL);
  const norms: number[] = [];
  await fit(model, data, {
    ...BASE,
    epochs: 1,
    batchSize: 2,
    clipNorm: 1e-3,
    optimizer: { name: 'sgd', learningRate: 1 },
    progressEvery: 1,
    onProgress: (p) => void norms.push(p.gradNorm),
  });
  // SGD with lr 1 and clipNorm 1e-3 moves the weights by at most 1e-3 per step in global norm.
  const w0 = weightsOf(new SequenceModel(SMALL));
  const w1 = weightsOf(model);
  const moved = Math.sqrt(w0.reduce((acc, v, i) => acc + (v - w1[i]) ** 2, 0));
  expect(moved).toBeLessThanOrEqual(5 * 1e-3 * (1 + 1e-4));
  expect(norms.every((n) => n > 1e-3)).toBe(true); // reported norms are before clipping
  model.dispose();
});

describe('bad inputs and options are refused up front, naming the field', () => {
  let model: SequenceModel;
  beforeAll(() => {
    model = new SequenceModel(SMALL);
  });
  afterAll(() => model.dispose());
  const x = toNestedArray(data.x) as number[][][];
  const y = toNestedArray(data.y) as number[][][];
  const cases: Array<[string, () => Promise<unknown>, RegExp, new (...a: never[]) => Error]> = [
    [
      'x rank',
      () => fit(model, { x: [[1, 2]] as never, y }, BASE),
      /data\.x: expected a rank-3 nested array/,
      LstmInputError,
    ],
    [
      'x inputSize',
      () => fit(model, { x: { data: new Float32Array(20), shape: [10, 1, 2] }, y }, BASE),
      /data\.x: expected shape \[N, T, 1\]/,
      LstmInputError,
    ],
    [
      'x ragged',
      () => fit(model, { x: [[[1], [2]], [[1]]], y }, BASE),
      /data\.x\[1\]: expected an array of 2 entries/,
      LstmInputError,
    ],
    [
      'x NaN',
      () => fit(model, { x: x.map((s, i) => (i === 3 ? [[NaN], ...s.slice(1)] : s)), y }, BASE),
      /data\.x: expected finite values, got "?NaN at \[3\]\[0\]\[0\]/,
      LstmInputError,
    ],
    [
      'y shape',
      () => fit(model, { x, y: y.slice(1) }, BASE),
      /data\.y: expected shape \[10, 4, 1\] for a manyToMany head with outputSize 1, got shape \[9, 4, 1\]/,
      LstmInputError,
    ],
    [
      'lengths count',
      () => fit(model, { x, y, lengths: [1, 2] }, BASE),
      /data\.lengths: expected 10 entries/,
      LstmInputError,
    ],
    [
      'lengths range',
      () => fit(model, { x, y, lengths: Array(10).fill(5) }, BASE),
      /data\.lengths\[0\]: expected an integer in 1\.\.4, got 5/,
      LstmInputError,
    ],
    [
      'epochs',
      () => fit(model, data, { ...BASE, epochs: 0 }),
      /epochs: expected a positive integer, got 0/,
      LstmConfigError,
    ],
    [
      'batchSize',
      () => fit(model, data, { ...BASE, batchSize: 1.5 }),
      /batchSize: expected a positive integer, got 1.5/,
      LstmConfigError,
    ],
    [
      'unknown option',
      () => fit(model, data, { ...BASE, learningRate: 1 } as never),
      /learningRate: expected one of the fit options/,
      LstmConfigError,
    ],
    [
      'optimizer',
      () => fit(model, data, { ...BASE, optimizer: { name: 'adamw', learningRate: 1 } as never }),
      /optimizer\.name: expected one of sgd, momentum, adam, rmsprop/,
      LstmConfigError,
    ],
    [
      'loss',
      () => fit(model, data, { ...BASE, loss: 'mae' as never }),
      /loss: expected one of mse, softmaxCrossEntropy, got "mae"/,
      LstmConfigError,
    ],
    [
      'clipNorm',
      () => fit(model, data, { ...BASE, clipNorm: -1 }),
      /clipNorm: expected a finite number > 0, got -1/,
      LstmConfigError,
    ],
    [
      'validationSplit',
      () => fit(model, data, { ...BASE, validationSplit: 1 }),
      /validationSplit: expected a number in \[0, 1\), got 1/,
      LstmConfigError,
    ],
    [
      'validationSplit too large',
      () => fit(model, data, { ...BASE, validationSplit: 0.95 }),
      /validationSplit: expected a split leaving at least one of the 10 samples for training, got 0.95/,
      LstmConfigError,
    ],
    [
      'seed',
      () => fit(model, data, { ...BASE, seed: undefined } as never),
      /seed: expected an integer, got undefined/,
      LstmConfigError,
    ],
    [
      'cross-entropy with one output',
      () => fit(model, data, { ...BASE, loss: 'softmaxCrossEntropy' }),
      /outputSize: expected at least 2 classes with loss 'softmaxCrossEntropy', got 1/,
      LstmConfigError,
    ],
  ];
  test.each(cases)('%s', async (_name, run, message, type) => {
    const err = (await run().catch((e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(type);
    expect(err.message).toMatch(message);
  });

  test('cross-entropy targets must be probability rows (one-hot)', async () => {
    const clf = new SequenceModel({
      lstm: { inputSize: 1, hiddenSize: 2, batchFirst: true },
      outputSize: 2,
      head: 'lastStep',
    });
    const err = await fit(
      clf,
      { x, y: [...Array(10)].map(() => [1, 1]) },
      { ...BASE, loss: 'softmaxCrossEntropy' },
    ).catch((e) => e);
    expect(err).toBeInstanceOf(LstmInputError);
    expect(err.message).toMatch(
      /data\.y row 0: expected class probabilities summing to 1 \(one-hot targets for softmaxCrossEntropy\), got "?a sum of 2/,
    );
    clf.dispose();
  });
});

test('many-to-many with lengths: padded steps do not count (their targets can be anything)', async () => {
  const lengths = [4, 2, 3, 1, 4, 4, 2, 3, 3, 1];
  const garbage = Float32Array.from(data.y.data);
  lengths.forEach((len, n) => garbage.fill(1e3, n * 4 + len, n * 4 + 4));
  const a = new SequenceModel(SMALL);
  const b = new SequenceModel(SMALL);
  const ra = await fit(a, { ...data, lengths }, { ...BASE, validationSplit: 0.2 });
  const rb = await fit(
    b,
    { x: data.x, y: { data: garbage, shape: data.y.shape }, lengths },
    { ...BASE, validationSplit: 0.2 },
  );
  expect(weightsOf(b)).toEqual(weightsOf(a));
  expect(rb.valLoss).toBe(ra.valLoss);
  expect(ra.valLoss!).toBeLessThan(10);
  a.dispose();
  b.dispose();
});

test('the model’s layout does not matter: batchFirst false trains to the same weights from batch-first data', async () => {
  const a = new SequenceModel(SMALL);
  const b = new SequenceModel({ ...SMALL, lstm: { ...SMALL.lstm, batchFirst: false } });
  const x = tf.tensor3d(data.x.data, data.x.shape as [number, number, number]);
  await fit(a, { x, y: data.y }, BASE);
  await fit(b, { x, y: data.y }, BASE);
  const wa = weightsOf(a);
  weightsOf(b).forEach((v, i) => expect(Math.abs(v - wa[i])).toBeLessThan(1e-6));
  expect(x.isDisposed).toBe(false); // fit only reads a tensor it is given
  x.dispose();
  a.dispose();
  b.dispose();
});

test('softmax cross-entropy on a last-step classification task: the loss falls well below the best constant guess', async () => {
  // Adding-problem sequences, labelled 1 when the two marked values sum to more than 1.
  const d = addingProblem({ samples: 48, seqLen: 4, seed: 5 });
  const labels = Array.from(d.y.data, (v): number => (v > 1 ? 1 : 0));
  const p1 = labels.reduce((a, b) => a + b, 0) / labels.length;
  const constantGuess = -(p1 * Math.log(p1) + (1 - p1) * Math.log(1 - p1)); // CE of predicting the class frequencies
  const model = new SequenceModel({
    lstm: { inputSize: 2, hiddenSize: 8, batchFirst: true, seed: 3 },
    outputSize: 2,
    head: 'lastStep',
  });
  const result = await fit(
    model,
    { x: d.x, y: oneHot(labels, 2) },
    {
      epochs: 25,
      batchSize: 16,
      optimizer: { name: 'adam', learningRate: 0.03 },
      loss: 'softmaxCrossEntropy',
      seed: 2,
    },
  );
  expect(result.history[0].loss).toBeGreaterThan(0.95 * constantGuess);
  expect(result.loss!).toBeLessThan(0.75 * constantGuess);
  model.dispose();
});

test('no tensor is left behind by fit, with validation, lengths, clipping, dropout and Adam', async () => {
  const model = new SequenceModel({
    lstm: { inputSize: 1, hiddenSize: 3, numLayers: 2, dropout: 0.2, bidirectional: true, seed: 1 },
    outputSize: 1,
  });
  const base = tf.memory().numTensors;
  await fit(
    model,
    { ...data, lengths: [4, 3, 4, 2, 1, 4, 4, 3, 2, 4] },
    {
      ...BASE,
      optimizer: { name: 'adam', learningRate: 0.01 },
      clipNorm: 0.5,
      validationSplit: 0.3,
      onCheckpoint: () => undefined,
    },
  );
  expect(tf.memory().numTensors).toBe(base);
  model.dispose();
});

test('the wasm backend trains to the same weights as cpu (within float32 noise), without leaks', async () => {
  const run = async () => {
    const model = new SequenceModel({
      lstm: { inputSize: 1, hiddenSize: 4, numLayers: 2, dropout: 0.2, seed: 3 },
      outputSize: 1,
    });
    const base = tf.memory().numTensors;
    await fit(model, data, {
      ...BASE,
      optimizer: { name: 'adam', learningRate: 0.01 },
      clipNorm: 1,
      validationSplit: 0.2,
    });
    expect(tf.memory().numTensors).toBe(base);
    const w = weightsOf(model);
    model.dispose();
    return w;
  };
  const onCpu = await run();
  try {
    await tf.setBackend('wasm');
    const onWasm = await run();
    onWasm.forEach((v, i) => expect(Math.abs(v - onCpu[i])).toBeLessThan(1e-4));
  } finally {
    await tf.setBackend('cpu');
  }
});

test('initialState: every sequence starts from the given state (broadcast over the batch), not from zeros', async () => {
  const H = 4;
  const h0 = [[[0.5, -0.2, 0.3, 0.9]]];
  const c0 = [[[1.0, 0.4, -0.7, 2.0]]];
  // One batch holding every sample and one epoch: the reported loss is the loss before the update.
  const opts: FitOptions = {
    epochs: 1,
    batchSize: 10,
    optimizer: { name: 'sgd', learningRate: 0.05 },
    loss: 'mse',
    seed: 1,
  };
  const expectedLoss = (model: SequenceModel, withState: boolean) =>
    tf.tidy(() => {
      const x = tf.tensor3d(data.x.data, data.x.shape as [number, number, number]);
      const state = withState
        ? {
            h0: tf.tile(tf.tensor3d(h0), [1, 10, 1]) as tf.Tensor3D,
            c0: tf.tile(tf.tensor3d(c0), [1, 10, 1]) as tf.Tensor3D,
          }
        : undefined;
      const { y } = model.predict(x, state);
      return tf.mean(tf.square(tf.sub(y, tf.tensor(data.y.data, data.y.shape)))).dataSync()[0];
    });
  const model = new SequenceModel(SMALL);
  const withState = expectedLoss(model, true);
  const fromZeros = expectedLoss(model, false);
  expect(Math.abs(withState - fromZeros)).toBeGreaterThan(1e-4);
  const before = tf.memory().numTensors;
  const result = await fit(model, data, { ...opts, initialState: { h0, c0 } });
  expect(tf.memory().numTensors).toBe(before);
  expect(result.history[0].loss).toBeCloseTo(withState, 5);
  model.dispose();

  const other = new SequenceModel(SMALL);
  await expect(fit(other, data, { ...opts, initialState: { h0: [[[1, 2, 3]]], c0 } })).rejects.toThrow(
    new RegExp(`initialState.h0: expected shape \\[1, 1, ${H}\\]`),
  );
  await expect(fit(other, data, { ...opts, initialState: { h0, c0: [[[NaN, 0, 0, 0]]] } })).rejects.toThrow(
    LstmConfigError,
  );
  other.dispose();
});
