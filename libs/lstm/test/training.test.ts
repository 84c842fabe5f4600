/**
 * The pieces fit is made of: SequenceModel (LSTM + linear head), losses, gradient clipping,
 * optimizers and their slots; and the headline check: training on a synthetic task beats the
 * trivial predictor by far within a bounded number of steps.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { LstmConfigError, LstmInputError, StateDictError } from '../src/errors';
import { clipByGlobalNorm, globalNorm } from '../src/clip';
import { computeLoss, oneHot, validateTargets } from '../src/losses';
import {
  createOptimizer,
  disposeOptimizer,
  readOptimizerSlots,
  resolveOptimizerConfig,
  writeOptimizerSlots,
} from '../src/optimizers';
import { SequenceModel } from '../src/sequence-model';
import { fit } from '../src/fit';
import { sineForecast } from '../src/synthetic';
import { Rng } from '../src/rng';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function randomTensor(shape: number[], seed: number): tf.Tensor {
  const rng = new Rng(seed);
  return tf.tensor(
    rng.uniformArray(
      shape.reduce((a, b) => a * b, 1),
      -1,
      1,
    ),
    shape,
  );
}

describe('SequenceModel', () => {
  test('parameters: the LSTM’s in PyTorch order, then head.weight [O, D*H] and head.bias [O]', () => {
    const m = new SequenceModel({
      lstm: { inputSize: 3, hiddenSize: 4, numLayers: 2, bidirectional: true, seed: 1 },
      outputSize: 5,
    });
    const shapes = [...m.parameters()].map(([n, v]) => [n, v.shape]);
    expect(shapes.slice(-2)).toEqual([
      ['head.weight', [5, 8]],
      ['head.bias', [5]],
    ]);
    expect(shapes[0]).toEqual(['weight_ih_l0', [16, 3]]);
    expect(shapes.length).toBe(16 + 2);
    // nn.Linear's default init: uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = D*H = 8.
    const w = m.parameters().get('head.weight')!.dataSync();
    const bound = 1 / Math.sqrt(8);
    expect(Math.max(...w.map(Math.abs))).toBeLessThanOrEqual(bound);
    expect(Math.max(...w.map(Math.abs))).toBeGreaterThan(bound * 0.7);
    // Seeded: the same seed gives the same head, another seed another one.
    const same = new SequenceModel({
      lstm: { inputSize: 3, hiddenSize: 4, numLayers: 2, bidirectional: true, seed: 1 },
      outputSize: 5,
    });
    const other = new SequenceModel({
      lstm: { inputSize: 3, hiddenSize: 4, numLayers: 2, bidirectional: true, seed: 2 },
      outputSize: 5,
    });
    expect(Array.from(same.parameters().get('head.weight')!.dataSync())).toEqual(Array.from(w));
    expect(Array.from(other.parameters().get('head.weight')!.dataSync())).not.toEqual(Array.from(w));
    [m, same, other].forEach((x) => x.dispose());
  });

  test('config is JSON-serialisable and rebuilds the same model', () => {
    const m = new SequenceModel({
      lstm: { inputSize: 2, hiddenSize: 3, activation: 'clippedRelu', cellClip: 6, seed: 4 },
      outputSize: 2,
      head: 'lastStep',
    });
    const cfg = JSON.parse(JSON.stringify(m.config));
    expect(cfg).toEqual(m.config);
    expect(cfg.head).toBe('lastStep');
    const again = new SequenceModel(cfg);
    for (const [name, v] of m.parameters())
      expect(Array.from(again.parameters().get(name)!.dataSync())).toEqual(Array.from(v.dataSync()));
    m.dispose();
    again.dispose();
  });

  test('manyToMany: y = output W^T + b at every step, in the LSTM’s layout', () => {
    for (const batchFirst of [true, false]) {
      const m = new SequenceModel({ lstm: { inputSize: 2, hiddenSize: 3, batchFirst, seed: 5 }, outputSize: 2 });
      const x = randomTensor(batchFirst ? [4, 6, 2] : [6, 4, 2], 1) as tf.Tensor3D;
      const { y, hN, cN } = m.predict(x);
      expect(y.shape).toEqual(batchFirst ? [4, 6, 2] : [6, 4, 2]);
      expect(hN.shape).toEqual([1, 4, 3]);
      const { output, hN: h2, cN: c2 } = m.lstm.forward(x);
      const p = m.parameters();
      const expected = tf.add(
        tf.matMul(tf.reshape(output, [24, 3]), p.get('head.weight')!, false, true),
        p.get('head.bias')!,
      );
      expect(tf.max(tf.abs(tf.sub(tf.reshape(y, [24, 2]), expected))).dataSync()[0]).toBeLessThan(1e-6);
      tf.dispose([x, y, hN, cN, output, h2, c2, expected]);
      m.dispose();
    }
  });

  test('lastStep reads each sequence at its last valid step (lengths), both directions from hN', () => {
    const m = new SequenceModel({
      lstm: { inputSize: 2, hiddenSize: 3, batchFirst: true, seed: 6 },
      outputSize: 1,
      head: 'lastStep',
    });
    const x = randomTensor([3, 5, 2], 2) as tf.Tensor3D;
    const lengths = [5, 2, 4];
    const { y, hN, cN } = m.predict(x, undefined, { lengths });
    expect(y.shape).toEqual([3, 1]);
    const { output, hN: h2, cN: c2 } = m.lstm.forward(x, undefined, { lengths });
    const out = output.arraySync();
    const W = m.parameters().get('head.weight')!.dataSync();
    const b = m.parameters().get('head.bias')!.dataSync()[0];
    const yv = y.dataSync();
    lengths.forEach((len, i) => {
      const h = out[i][len - 1];
      expect(yv[i]).toBeCloseTo(
        h.reduce((acc, v, k) => acc + v * W[k], b),
        5,
      );
    });
    tf.dispose([x, y, hN, cN, output, h2, c2]);
    m.dispose();

    const bi = new SequenceModel({
      lstm: { inputSize: 2, hiddenSize: 3, numLayers: 2, bidirectional: true, seed: 6 },
      outputSize: 2,
      head: 'lastStep',
    });
    const xt = randomTensor([5, 3, 2], 3) as tf.Tensor3D;
    const r = bi.predict(xt);
    expect(r.y.shape).toEqual([3, 2]);
    // Layer 1's rows of hN (forward, reverse) concatenated, through the head.
    const feats = tf.concat(
      [tf.squeeze(tf.slice(r.hN, [2, 0, 0], [1, 3, 3]), [0]), tf.squeeze(tf.slice(r.hN, [3, 0, 0], [1, 3, 3]), [0])],
      1,
    );
    const p = bi.parameters();
    const expected = tf.add(tf.matMul(feats, p.get('head.weight')!, false, true), p.get('head.bias')!);
    expect(tf.max(tf.abs(tf.sub(r.y, expected))).dataSync()[0]).toBeLessThan(1e-6);
    tf.dispose([xt, r.y, r.hN, r.cN, feats, expected]);
    bi.dispose();
  });

  test('stateDict / loadStateDict cover the LSTM and the head; bad dicts name the entry and change nothing', () => {
    const a = new SequenceModel({ lstm: { inputSize: 2, hiddenSize: 3, seed: 1 }, outputSize: 2 });
    const b = new SequenceModel({ lstm: { inputSize: 2, hiddenSize: 3, seed: 2 }, outputSize: 2 });
    const sd = a.stateDict();
    expect(Object.keys(sd)).toEqual([
      'weight_ih_l0',
      'weight_hh_l0',
      'bias_ih_l0',
      'bias_hh_l0',
      'head.weight',
      'head.bias',
    ]);
    const before = b.parameters().get('head.bias')!.dataSync().slice();
    const { ['head.bias']: _drop, ...missing } = sd;
    expect(() => b.loadStateDict(missing)).toThrow(StateDictError);
    expect(() => b.loadStateDict(missing)).toThrow(/head\.bias: missing entry of shape \[2\]/);
    expect(() => b.loadStateDict({ ...sd, 'head.bias': [1, 2, 3] })).toThrow(
      /head\.bias: expected shape \[2\], got \[3\]/,
    );
    expect(() => b.loadStateDict({ ...sd, extra: [1] })).toThrow(/extra/);
    expect(() => b.loadStateDict({ ...sd, weight_hh_l0: [[1]] })).toThrow(/weight_hh_l0/);
    expect(Array.from(b.parameters().get('head.bias')!.dataSync())).toEqual(Array.from(before));
    b.loadStateDict(sd);
    for (const [name, v] of a.parameters())
      expect(Array.from(b.parameters().get(name)!.dataSync())).toEqual(Array.from(v.dataSync()));
    tf.dispose(Object.values(sd));
    a.dispose();
    b.dispose();
  });

  test('bad options name the field', () => {
    expect(() => new SequenceModel({ lstm: { inputSize: 2, hiddenSize: 3 }, outputSize: 0 })).toThrow(
      /outputSize: expected a positive integer, got 0/,
    );
    expect(
      () => new SequenceModel({ lstm: { inputSize: 2, hiddenSize: 3 }, outputSize: 1, head: 'first' as never }),
    ).toThrow(/head: expected one of manyToMany, lastStep/);
    expect(() => new SequenceModel({ lstm: { inputSize: 2, hiddenSize: -3 }, outputSize: 1 })).toThrow(
      /lstm\.hiddenSize: expected a positive integer, got -3/,
    );
    expect(
      () => new SequenceModel({ lstm: { inputSize: 2, hiddenSize: 3, activation: 'gelu' as never }, outputSize: 1 }),
    ).toThrow(LstmConfigError);
    const m = new SequenceModel({ lstm: { inputSize: 2, hiddenSize: 3 }, outputSize: 1 });
    const bad = tf.zeros([2, 3, 5]) as tf.Tensor3D;
    expect(() => m.predict(bad)).toThrow(LstmInputError);
    bad.dispose();
    m.dispose();
    expect(() => m.parameters()).toThrow(/disposed/);
  });

  test('predict leaves no tensor behind besides its results', () => {
    const m = new SequenceModel({
      lstm: { inputSize: 2, hiddenSize: 3, numLayers: 2, seed: 1 },
      outputSize: 2,
      head: 'lastStep',
    });
    const x = randomTensor([4, 2, 2], 1) as tf.Tensor3D;
    const base = tf.memory().numTensors;
    const r = m.predict(x, undefined, { lengths: [4, 1] });
    tf.dispose([r.y, r.hN, r.cN]);
    expect(tf.memory().numTensors).toBe(base);
    x.dispose();
    m.dispose();
  });
});

describe('losses', () => {
  test('mse and softmax cross-entropy against hand computation, with and without a mask', () => {
    const pred = tf.tensor3d([
      [
        [1, 2],
        [0, 0],
      ],
      [
        [3, -1],
        [0.5, 0.5],
      ],
    ]);
    const target = tf.tensor3d([
      [
        [0, 2],
        [1, 1],
      ],
      [
        [3, 1],
        [0, 0],
      ],
    ]);
    expect(computeLoss('mse', pred, target).dataSync()[0]).toBeCloseTo((1 + 0 + 1 + 1 + 0 + 4 + 0.25 + 0.25) / 8, 6);
    const mask = tf.tensor2d([
      [1, 0],
      [1, 1],
    ]);
    // Masked: positions (0,0), (1,0), (1,1): per-position means 0.5, 2, 0.25.
    expect(computeLoss('mse', pred, target, mask).dataSync()[0]).toBeCloseTo((0.5 + 2 + 0.25) / 3, 6);

    const logits = tf.tensor2d([
      [2, 0, -1],
      [0, 0, 0],
    ]);
    const onehot = tf.tensor2d(oneHot([0, 2], 3));
    const lse = (r: number[]) => Math.log(r.reduce((a, v) => a + Math.exp(v), 0));
    const expected = (lse([2, 0, -1]) - 2 + (lse([0, 0, 0]) - 0)) / 2;
    expect(computeLoss('softmaxCrossEntropy', logits, onehot).dataSync()[0]).toBeCloseTo(expected, 5);
    expect(() => computeLoss('mse', pred, onehot)).toThrow(/target: expected shape \[2, 2, 2\]/);
    tf.dispose([pred, target, mask, logits, onehot]);
  });

  test('one-hot targets: oneHot converts class indices, validateTargets rejects non-probabilities', () => {
    expect(oneHot([1, 0], 3)).toEqual([
      [0, 1, 0],
      [1, 0, 0],
    ]);
    expect(oneHot([[2], [0]], 3)).toEqual([[[0, 0, 1]], [[1, 0, 0]]]);
    expect(() => oneHot([3], 3)).toThrow(/labels\[0\]: expected a class index in 0\.\.2, got 3/);
    expect(() => validateTargets('softmaxCrossEntropy', [0, 1, 0, 1, 1, 0], 3)).toThrow(
      /y row 1: expected class probabilities summing to 1/,
    );
    expect(() => validateTargets('softmaxCrossEntropy', [2, -1], 2)).toThrow(
      /y row 0: expected class probabilities >= 0/,
    );
    expect(() => validateTargets('mse', [0, NaN], 1)).toThrow(/finite/);
    expect(() => validateTargets('softmaxCrossEntropy', [0.25, 0.75], 2)).not.toThrow();
  });
});

describe('clipByGlobalNorm', () => {
  test('scales every gradient by clipNorm / globalNorm: norm after <= clipNorm, direction kept', () => {
    const g = [
      tf.tensor2d([
        [3, 0],
        [0, 4],
      ]),
      tf.tensor1d([12]),
    ]; // global norm 13
    const { clipped, norm } = clipByGlobalNorm(g, 6.5);
    expect(norm.dataSync()[0]).toBeCloseTo(13, 5);
    const after = globalNorm(clipped);
    expect(after.dataSync()[0]).toBeLessThanOrEqual(6.5 * (1 + 1e-6));
    expect(after.dataSync()[0]).toBeCloseTo(6.5, 4);
    // Same direction: each element halved.
    expect(Array.from(clipped[0].dataSync())).toEqual([1.5, 0, 0, 2]);
    expect(Array.from(clipped[1].dataSync())).toEqual([6]);
    // Below the threshold nothing changes (and the reported norm is still the norm).
    const loose = clipByGlobalNorm(g, 100);
    expect(Array.from(loose.clipped[1].dataSync())).toEqual([12]);
    expect(loose.norm.dataSync()[0]).toBeCloseTo(13, 5);
    expect(() => clipByGlobalNorm(g, 0)).toThrow(/clipNorm: expected a finite number > 0, got 0/);
    tf.dispose([...g, ...clipped, norm, after, ...loose.clipped, loose.norm]);
  });

  test('a non-finite gradient gives a non-finite norm (fit turns it into a DivergenceError)', () => {
    const g = [tf.tensor1d([1, NaN])];
    const { clipped, norm } = clipByGlobalNorm(g, 1);
    expect(Number.isNaN(norm.dataSync()[0])).toBe(true);
    tf.dispose([...g, ...clipped, norm]);
  });
});

describe('optimizers', () => {
  test('configs are validated and defaults filled', () => {
    expect(resolveOptimizerConfig({ name: 'adam', learningRate: 0.01 })).toEqual({
      name: 'adam',
      learningRate: 0.01,
      beta1: 0.9,
      beta2: 0.999,
      epsilon: 1e-7,
    });
    expect(resolveOptimizerConfig({ name: 'rmsprop', learningRate: 0.01 })).toEqual({
      name: 'rmsprop',
      learningRate: 0.01,
      decay: 0.9,
      momentum: 0,
      epsilon: 1e-7,
    });
    expect(resolveOptimizerConfig({ name: 'momentum', learningRate: 0.1 })).toEqual({
      name: 'momentum',
      learningRate: 0.1,
      momentum: 0.9,
      nesterov: false,
    });
    expect(() => resolveOptimizerConfig({ name: 'adagrad' as never, learningRate: 1 })).toThrow(
      /optimizer\.name: expected one of sgd, momentum, adam, rmsprop, got "adagrad"/,
    );
    expect(() => resolveOptimizerConfig({ name: 'sgd', learningRate: 0.1, beta1: 0.9 })).toThrow(
      /optimizer\.beta1: expected only the fields learningRate for optimizer 'sgd'/,
    );
    expect(() => resolveOptimizerConfig({ name: 'adam', learningRate: -1 })).toThrow(
      /optimizer\.learningRate: expected a finite number > 0, got -1/,
    );
    expect(() => resolveOptimizerConfig({ name: 'adam', learningRate: 1, beta2: 1 })).toThrow(/optimizer\.beta2/);
    // tfjs's centered RMSProp is NaN for near-zero gradients: not offered.
    expect(() => resolveOptimizerConfig({ name: 'rmsprop', learningRate: 1, centered: true } as never)).toThrow(
      /optimizer\.centered: expected only the fields/,
    );
  });

  test('slots read under parameter names and restore into a fresh optimizer, which then steps identically', async () => {
    for (const config of [
      { name: 'adam' as const, learningRate: 0.1 },
      { name: 'momentum' as const, learningRate: 0.1, nesterov: true },
      { name: 'rmsprop' as const, learningRate: 0.1, momentum: 0.5 },
    ]) {
      const base = tf.memory().numTensors;
      const mk = (): tf.Variable[] =>
        tf.tidy(() => [tf.variable(tf.tensor1d([1, -2]), true), tf.variable(tf.tensor2d([[0.5]]), true)]);
      const grads = [tf.tensor1d([0.3, -0.1]), tf.tensor2d([[2]])];
      const a = mk();
      const optA = createOptimizer(config);
      const apply = (opt: tf.Optimizer, vs: tf.Variable[]) =>
        opt.applyGradients(vs.map((v, i) => ({ name: v.name, tensor: grads[i] })));
      apply(optA, a);
      apply(optA, a);
      const slots = await readOptimizerSlots(
        optA,
        a.map((v) => v.name),
        ['p0', 'p1'],
      );
      expect(slots.iterations).toBe(2);
      expect(slots.slots.every((s) => /^p[01]\//.test(s.name))).toBe(true);
      // A second model with the same values, a fresh optimizer restored from the slots.
      const b = mk();
      a.forEach((v, i) => b[i].assign(v));
      const optB = createOptimizer(config);
      await writeOptimizerSlots(optB, slots);
      // Reading back after a restore keeps the parameter names.
      expect(
        (
          await readOptimizerSlots(
            optB,
            b.map((v) => v.name),
            ['p0', 'p1'],
          )
        ).slots.map((s) => s.name),
      ).toEqual(slots.slots.map((s) => s.name));
      apply(optA, a);
      apply(optB, b);
      a.forEach((v, i) => expect(Array.from(b[i].dataSync())).toEqual(Array.from(v.dataSync())));
      disposeOptimizer(optA);
      disposeOptimizer(optB);
      tf.dispose([...a, ...b, ...grads]);
      expect(tf.memory().numTensors).toBe(base);
    }
  });
});

test('training on next-step sine prediction beats the mean predictor by far within 45 steps (seeded)', async () => {
  const data = sineForecast({ samples: 64, seqLen: 16, seed: 1 });
  const model = new SequenceModel({ lstm: { inputSize: 1, hiddenSize: 8, batchFirst: true, seed: 3 }, outputSize: 1 });
  const base = tf.memory().numTensors;
  const result = await fit(model, data, {
    epochs: 15,
    batchSize: 16,
    optimizer: { name: 'adam', learningRate: 0.03 },
    loss: 'mse',
    seed: 1,
    validationSplit: 0.25,
  });
  expect(result.steps).toBe(45);
  // Trivial predictor (the mean of y): mse = variance of y.
  expect(result.valLoss!).toBeLessThan(0.25 * data.trivialMse);
  expect(result.history[0].loss).toBeGreaterThan(result.loss!);
  expect(tf.memory().numTensors).toBe(base);
  model.dispose();
});
