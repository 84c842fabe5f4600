/**
 * Exact resume: training N epochs straight equals training k epochs, serialising the TrainingState
 * (bytes or JSON), disposing everything, and training the rest in a fresh model and optimizer.
 * The setup exercises every piece of state: Adam's moments, the shuffle order, the validation split,
 * and dropout masks between two layers.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { LstmConfigError, LstmInputError, SafetensorsError, TrainingAbortedError } from '../src/errors';
import { FitOptions, fit } from '../src/fit';
import { decodeSafetensors } from '../src/safetensors';
import type { SequenceModelOptions } from '../src/config';
import { SequenceModel } from '../src/sequence-model';
import { sineForecast } from '../src/synthetic';
import {
  TrainingState,
  decodeTrainingState,
  encodeTrainingState,
  restoreModel,
  trainingStateFromJSON,
  trainingStateToJSON,
} from '../src/training-state';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const MODEL: SequenceModelOptions = {
  lstm: { inputSize: 1, hiddenSize: 4, numLayers: 2, dropout: 0.3, batchFirst: true, seed: 21 },
  outputSize: 1,
};
const data = sineForecast({ samples: 14, seqLen: 5, seed: 9 }); // 11 train (3 batches of 4, 4, 3) + 3 validation
const OPTIONS: FitOptions = {
  epochs: 4,
  batchSize: 4,
  optimizer: { name: 'adam', learningRate: 0.02 },
  loss: 'mse',
  seed: 5,
  validationSplit: 0.2,
  clipNorm: 1,
};

function weightsOf(model: SequenceModel): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const [name, v] of model.parameters()) out[name] = Array.from(v.dataSync());
  return out;
}

function expectSameWeights(a: Record<string, number[]>, b: Record<string, number[]>, tol = 1e-6) {
  expect(Object.keys(b)).toEqual(Object.keys(a));
  for (const name of Object.keys(a)) {
    const diff = Math.max(...a[name].map((v, i) => Math.abs(v - b[name][i])));
    if (!(diff <= tol)) throw new Error(`${name}: max |diff| ${diff} > ${tol}`);
  }
}

let straight: { weights: Record<string, number[]>; losses: Array<[number, number | null]> };

beforeAll(async () => {
  const model = new SequenceModel(MODEL);
  const result = await fit(model, data, OPTIONS);
  straight = { weights: weightsOf(model), losses: result.history.map((h) => [h.loss, h.valLoss]) };
  model.dispose();
});

test('resume at an epoch end through bytes: same weights and history as never stopping (Adam, shuffle, validation, dropout)', async () => {
  const base = tf.memory().numTensors;
  const states: TrainingState[] = [];
  const first = new SequenceModel(MODEL);
  await fit(first, data, { ...OPTIONS, epochs: 2, onCheckpoint: (s) => void states.push(s) });
  first.dispose();
  expect(states.map((s) => s.progress.epoch)).toEqual([1, 2]);
  const bytes = encodeTrainingState(states[1]);
  states.length = 0;
  expect(tf.memory().numTensors).toBe(base); // nothing alive: model and optimizer are gone

  const state = decodeTrainingState(bytes);
  expect(state.optimizer.slots.length).toBe(2 * (8 + 2)); // Adam: m and v for 8 LSTM + 2 head parameters
  expect(state.optimizer.iterations).toBe(6);
  const model = restoreModel(state);
  const result = await fit(model, data, { ...OPTIONS, resumeFrom: state });
  expectSameWeights(straight.weights, weightsOf(model));
  expect(result.history.map((h) => [h.loss, h.valLoss])).toEqual(straight.losses);
  expect(result.steps).toBe(12);
  model.dispose();
  expect(tf.memory().numTensors).toBe(base);
});

test('resume mid-epoch after an abort (checkpointOnAbort), through JSON: same weights as never stopping', async () => {
  const controller = new AbortController();
  let saved: TrainingState | null = null;
  const first = new SequenceModel(MODEL);
  const run = fit(first, data, {
    ...OPTIONS,
    progressEvery: 1,
    checkpointEvery: 100,
    checkpointOnAbort: true,
    signal: controller.signal,
    onProgress: (p) => {
      if (p.step === 7) controller.abort(); // epoch 2, after its first batch
    },
    onCheckpoint: (s) => {
      saved = s;
    },
  });
  await expect(run).rejects.toThrow(TrainingAbortedError);
  await expect(run).rejects.toMatchObject({ epoch: 2, step: 7 });
  first.dispose();
  const json = JSON.parse(JSON.stringify(trainingStateToJSON(saved!)));
  const state = trainingStateFromJSON(json);
  expect(state.progress).toMatchObject({ epoch: 2, stepInEpoch: 1, globalStep: 7 });
  expect(state.progress.permutation!.slice().sort((a, b) => a - b)).toEqual([...Array(11).keys()]);

  const model = new SequenceModel(MODEL); // a fresh model: fit loads the weights from the state
  const result = await fit(model, data, { ...OPTIONS, resumeFrom: state });
  expectSameWeights(straight.weights, weightsOf(model));
  expect(result.history.map((h) => [h.loss, h.valLoss])).toEqual(straight.losses);
  model.dispose();
});

test('momentum and RMSProp (with momentum) slots resume exactly too', async () => {
  for (const optimizer of [
    { name: 'momentum' as const, learningRate: 0.05, nesterov: true },
    { name: 'rmsprop' as const, learningRate: 0.01, momentum: 0.5 },
  ]) {
    const small: SequenceModelOptions = {
      lstm: { inputSize: 1, hiddenSize: 3, batchFirst: true, seed: 3 },
      outputSize: 1,
    };
    const opts: FitOptions = { epochs: 2, batchSize: 6, optimizer, loss: 'mse', seed: 1 };
    const a = new SequenceModel(small);
    await fit(a, data, opts);
    let state: TrainingState | null = null;
    const b = new SequenceModel(small);
    await fit(b, data, { ...opts, epochs: 1, onCheckpoint: (s) => void (state = s) });
    b.dispose();
    const c = restoreModel(decodeTrainingState(encodeTrainingState(state!)));
    await fit(c, data, { ...opts, resumeFrom: state! });
    expectSameWeights(weightsOf(a), weightsOf(c));
    a.dispose();
    c.dispose();
  }
});

describe('TrainingState serialisation', () => {
  let state: TrainingState;
  beforeAll(async () => {
    const model = new SequenceModel(MODEL);
    await fit(model, data, { ...OPTIONS, epochs: 1, onCheckpoint: (s) => void (state = s) });
    model.dispose();
  });

  test('JSON and bytes round-trip losslessly; the bytes are a safetensors file of weights and slots', () => {
    const viaJson = trainingStateFromJSON(JSON.parse(JSON.stringify(trainingStateToJSON(state))));
    const viaBytes = decodeTrainingState(encodeTrainingState(state));
    for (const s of [viaJson, viaBytes]) {
      expect(s.model).toEqual(state.model);
      expect(s.settings).toEqual(state.settings);
      expect(s.progress).toEqual(state.progress);
      expect(s.rng).toEqual(state.rng);
      expect(s.history).toEqual(state.history);
      expect(s.optimizer.config).toEqual(state.optimizer.config);
      expect(s.optimizer.adamAccBeta).toEqual(state.optimizer.adamAccBeta);
      expect(s.optimizer.slots.map((x) => x.name)).toEqual(state.optimizer.slots.map((x) => x.name));
      s.optimizer.slots.forEach((x, i) =>
        expect(Array.from(x.data)).toEqual(Array.from(state.optimizer.slots[i].data)),
      );
      for (const [name, t] of Object.entries(state.weights)) {
        expect(s.weights[name].shape).toEqual(t.shape);
        expect(Array.from(s.weights[name].data)).toEqual(Array.from(t.data));
      }
    }
    const file = decodeSafetensors(encodeTrainingState(state));
    expect(file.tensors['weights/head.weight'].shape).toEqual([1, 4]);
    expect(file.tensors['optimizer/weight_ih_l0/m'].dtype).toBe('F32');
    expect(JSON.parse(file.metadata['relu_lstm.training_state']).format).toBe('relu-lstm/training-state');
  });

  test('save and load leave no tensor behind', () => {
    const base = tf.memory().numTensors;
    const model = restoreModel(decodeTrainingState(encodeTrainingState(state)));
    model.dispose();
    expect(tf.memory().numTensors).toBe(base);
  });

  test('malformed states are refused with the field named', () => {
    const json = trainingStateToJSON(state);
    expect(() => trainingStateFromJSON({ ...json, version: 2 as never })).toThrow(
      /trainingState\.version: expected 1, got 2/,
    );
    expect(() =>
      trainingStateFromJSON({
        ...json,
        weights: { ...json.weights, 'head.bias': { ...json.weights['head.bias'], base64: 'AAAA' } },
      }),
    ).toThrow(/trainingState\.weights\.head\.bias\.data: expected 1 values for shape \[1\], got 1 values|head\.bias/);
    expect(() => trainingStateFromJSON({ ...json, rng: { ...json.rng, shuffle: [1, 2] as never } })).toThrow(
      /trainingState\.rng\.shuffle: expected four 32-bit integers/,
    );
    expect(() => trainingStateFromJSON({ ...json, model: { ...json.model, outputSize: 0 } })).toThrow(LstmInputError);
    expect(() => decodeTrainingState(new Uint8Array([1, 2, 3]))).toThrow(SafetensorsError);
    const bytes = encodeTrainingState(state);
    expect(() => decodeTrainingState(bytes.subarray(0, bytes.length - 4))).toThrow(SafetensorsError);
  });

  test('resuming with changed settings, data or model is refused with the field named', async () => {
    const model = restoreModel(state);
    await expect(fit(model, data, { ...OPTIONS, batchSize: 5, resumeFrom: state })).rejects.toThrow(
      /batchSize: expected 4, as in the checkpoint resumed from, got 5/,
    );
    await expect(fit(model, data, { ...OPTIONS, seed: 6, resumeFrom: state })).rejects.toThrow(LstmConfigError);
    await expect(
      fit(model, data, { ...OPTIONS, optimizer: { name: 'adam', learningRate: 0.5 }, resumeFrom: state }),
    ).rejects.toThrow(/optimizer: expected/);
    const fewer = sineForecast({ samples: 13, seqLen: 5, seed: 9 });
    await expect(fit(model, fewer, { ...OPTIONS, resumeFrom: state })).rejects.toThrow(/data: expected 14 samples/);
    const other = new SequenceModel({ ...MODEL, lstm: { ...MODEL.lstm, hiddenSize: 5 } });
    await expect(fit(other, data, { ...OPTIONS, resumeFrom: state })).rejects.toThrow(
      /model: expected a model with the checkpoint's config/,
    );
    other.dispose();
    model.dispose();
  });
});
