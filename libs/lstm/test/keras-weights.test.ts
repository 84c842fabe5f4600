/**
 * PyTorch state dict <-> Keras / tfjs-layers LSTM weights.
 *
 * Oracles, in order of independence:
 *  - the fixtures' `keras_weights`, computed in Python from the same state dicts;
 *  - a plain float64 ReLU-LSTM written out below (no tfjs), run on converted weights;
 *  - tf.layers' own LSTM (the '@tensorflow/tfjs' umbrella, a devDependency) with the converted
 *    weights, against the fixtures' PyTorch outputs: this checks the layout AND the gate order;
 *  - ReluLstm against tf.layers on random weights and inputs, converting both ways.
 */
import * as tf from '@tensorflow/tfjs';
import { join } from 'path';
import { LstmConfigError, StateDictError } from '../src/errors';
import { WeightLayout, fromKerasWeights, kerasWeightSpecs, toKerasWeights } from '../src/keras-weights';
import { ReluLstm } from '../src/relu-lstm';
import { Fixture, loadFixture } from './helpers/fixtures';
import { useCpuBackendWithLeakCheck } from './helpers/leak-check';

type Nested = number | Nested[];

const load = loadFixture;

/** The top-level cases: all unidirectional ReLU-LSTMs with `keras_weights` computed in Python. */
const KERAS_CASES = [
  'tiny_h1.json',
  'seq1_two_layer.json',
  'basic.json',
  'nonzero_state.json',
  'two_layer.json',
  'three_layer_state.json',
  'large_inputs.json',
  'batch1_deep_long.json',
].map(load);
/** more/ cases tf.layers can express (no per-sequence lengths): bidirectional, tanh, relu6, hard sigmoid. */
const MORE_CASES = ['bidir_two_layer.json', 'tanh_is_nn_lstm.json', 'relu6_large.json', 'hard_sigmoid_gates.json'].map(
  (f) => load(join('more', f)),
);

function layoutOf(f: Fixture): Required<WeightLayout> {
  return {
    inputSize: f.config.input_size,
    hiddenSize: f.config.hidden_size,
    numLayers: f.config.num_layers,
    bidirectional: f.config.bidirectional ?? false,
    bias: true,
  };
}

function stateDictOf(f: Fixture): Record<string, tf.Tensor> {
  const out: Record<string, tf.Tensor> = {};
  for (const [name, v] of Object.entries(f.state_dict)) out[name] = tf.tensor(v, undefined, 'float32');
  return out;
}

function kerasListOf(f: Fixture): tf.Tensor[] {
  return f.keras_weights!.flatMap((w) => [tf.tensor2d(w.kernel), tf.tensor2d(w.recurrent_kernel), tf.tensor1d(w.bias)]);
}

function flat(v: Nested): number[] {
  return Array.isArray(v) ? v.flatMap(flat) : [v];
}

/** max |a - b| / max |b|: the tolerance measure of the brief. */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / Math.max(scale, 1e-30);
}

// ---------------------------------------------------------------------------------------------
// A plain float64 ReLU-LSTM (unidirectional), the same equations as the fixtures' README:
// gates = W_ih x + b_ih + W_hh h + b_hh in order (i, f, g, o); i, f, o = sigmoid; g = relu;
// c = f*c + i*g; h = o*relu(c). Batch-first x [B][T][I]; states [L][B][H].

function plainForward(
  sd: Record<string, number[][] | number[]>,
  x: number[][][],
  h0: number[][][],
  c0: number[][][],
  L: number,
) {
  const sig = (v: number) => 1 / (1 + Math.exp(-v));
  const relu = (v: number) => Math.max(v, 0);
  const B = x.length;
  const T = x[0].length;
  const h = h0.map((l) => l.map((r) => r.slice()));
  const c = c0.map((l) => l.map((r) => r.slice()));
  const output: number[][][] = Array.from({ length: B }, () => []);
  for (let t = 0; t < T; t++) {
    for (let b = 0; b < B; b++) {
      let inp = x[b][t];
      for (let l = 0; l < L; l++) {
        const wih = sd[`weight_ih_l${l}`] as number[][];
        const whh = sd[`weight_hh_l${l}`] as number[][];
        const bih = sd[`bias_ih_l${l}`] as number[];
        const bhh = sd[`bias_hh_l${l}`] as number[];
        const H = whh[0].length;
        const z = wih.map(
          (row, k) =>
            row.reduce((s, w, j) => s + w * inp[j], bih[k] + bhh[k]) +
            whh[k].reduce((s, w, j) => s + w * h[l][b][j], 0),
        );
        const next = h[l][b].map((_, j) => {
          const cj = sig(z[H + j]) * c[l][b][j] + sig(z[j]) * relu(z[2 * H + j]);
          c[l][b][j] = cj;
          return sig(z[3 * H + j]) * relu(cj);
        });
        h[l][b] = next;
        inp = next;
      }
      output[b].push(inp);
    }
  }
  return { output, h_n: h, c_n: c };
}

// ---------------------------------------------------------------------------------------------
// tf.layers models

interface KerasSpec {
  inputSize: number;
  hiddenSize: number;
  numLayers: number;
  bidirectional: boolean;
  activation: 'relu' | 'tanh' | 'relu6';
  recurrentActivation: 'sigmoid' | 'hardSigmoid';
}

/**
 * Stacked tf.layers LSTMs (each in a Bidirectional wrapper when asked) with explicit initial states,
 * returning [output, h(layer 0 fwd), c(layer 0 fwd), h(layer 0 bwd), ...]. Zero initialisers: the
 * weights are always set afterwards, and tfjs's default orthogonal initialiser would cost a QR.
 */
function buildKerasModel(s: KerasSpec): tf.LayersModel {
  const x = tf.input({ shape: [null, s.inputSize] });
  const D = s.bidirectional ? 2 : 1;
  const stateInputs: tf.SymbolicTensor[] = [];
  const finals: tf.SymbolicTensor[] = [];
  let seq = x;
  for (let l = 0; l < s.numLayers; l++) {
    const lstm = tf.layers.lstm({
      units: s.hiddenSize,
      activation: s.activation,
      recurrentActivation: s.recurrentActivation,
      returnSequences: true,
      returnState: true,
      kernelInitializer: 'zeros',
      recurrentInitializer: 'zeros',
      biasInitializer: 'zeros',
    });
    const states = Array.from({ length: 2 * D }, () => tf.input({ shape: [s.hiddenSize] }));
    stateInputs.push(...states);
    const layer = s.bidirectional ? tf.layers.bidirectional({ layer: lstm, mergeMode: 'concat' }) : lstm;
    const [out, ...hc] = layer.apply(seq, { initialState: states }) as tf.SymbolicTensor[];
    finals.push(...hc);
    seq = out;
  }
  return tf.model({ inputs: [x, ...stateInputs], outputs: [seq, ...finals] });
}

/** Runs a model from buildKerasModel; returns output [B, T, D*H] and hN, cN [L*D, B, H] (PyTorch's indexing). */
function runKeras(model: tf.LayersModel, x: tf.Tensor3D, h0: tf.Tensor3D, c0: tf.Tensor3D) {
  return tf.tidy(() => {
    const n = h0.shape[0];
    const states = Array.from({ length: n }, (_, i) => [
      tf.squeeze(tf.slice(h0, [i, 0, 0], [1, -1, -1]), [0]),
      tf.squeeze(tf.slice(c0, [i, 0, 0], [1, -1, -1]), [0]),
    ]).flat();
    const [output, ...hc] = model.predict([x, ...states]) as tf.Tensor[];
    const hN = tf.stack(hc.filter((_, i) => i % 2 === 0)) as tf.Tensor3D;
    const cN = tf.stack(hc.filter((_, i) => i % 2 === 1)) as tf.Tensor3D;
    return { output: output as tf.Tensor3D, hN, cN };
  });
}

function specOf(f: Fixture): KerasSpec {
  return {
    ...layoutOf(f),
    activation: (f.config.activation ?? 'relu') as KerasSpec['activation'],
    recurrentActivation: f.config.recurrent_activation === 'hard_sigmoid' ? 'hardSigmoid' : 'sigmoid',
  };
}

// ---------------------------------------------------------------------------------------------

useCpuBackendWithLeakCheck();

describe('toKerasWeights / fromKerasWeights against the Python fixtures', () => {
  it.each(KERAS_CASES.map((f) => [f.name, f] as const))(
    '%s: toKerasWeights(state_dict) equals keras_weights',
    (_, f) => {
      const sd = stateDictOf(f);
      const expected = kerasListOf(f);
      const got = toKerasWeights(sd, layoutOf(f));
      try {
        expect(got.length).toBe(expected.length);
        got.forEach((t, i) => {
          expect(t.shape).toEqual(expected[i].shape);
          // kernels are transposes (exact); the bias is a float32 sum of two float32 roundings.
          expect(relErr(t.dataSync(), expected[i].dataSync())).toBeLessThan(1e-6);
        });
      } finally {
        tf.dispose([...Object.values(sd), ...expected, ...got]);
      }
    },
  );

  it.each(KERAS_CASES.map((f) => [f.name, f] as const))(
    '%s: fromKerasWeights(keras_weights) computes the fixture outputs',
    (_, f) => {
      const weights = kerasListOf(f);
      const sd = fromKerasWeights(weights, layoutOf(f));
      try {
        expect(Object.keys(sd)).toEqual(Object.keys(f.state_dict)); // PyTorch's names, in PyTorch's order
        const plain: Record<string, number[][] | number[]> = {};
        for (const [name, t] of Object.entries(sd)) plain[name] = t.arraySync() as number[][] | number[];
        for (let l = 0; l < f.config.num_layers; l++) {
          expect(plain[`weight_ih_l${l}`]).toEqual(
            (f.state_dict[`weight_ih_l${l}`] as number[][]).map((r) => r.map(Math.fround)),
          );
          expect(flat(plain[`bias_hh_l${l}`])).toEqual(new Array(4 * f.config.hidden_size).fill(0));
        }
        const ref = plainForward(plain, f.x, f.h0, f.c0, f.config.num_layers);
        expect(relErr(flat(ref.output), flat(f.expected.output))).toBeLessThan(1e-5);
        expect(relErr(flat(ref.h_n), flat(f.expected.h_n))).toBeLessThan(1e-5);
        expect(relErr(flat(ref.c_n), flat(f.expected.c_n))).toBeLessThan(1e-5);
      } finally {
        tf.dispose([...weights, ...Object.values(sd)]);
      }
    },
  );

  it('round-trips: toKerasWeights(fromKerasWeights(w)) = w, bidirectional and without bias too', () => {
    const layouts: WeightLayout[] = [
      { inputSize: 3, hiddenSize: 2, numLayers: 2, bidirectional: true },
      { inputSize: 1, hiddenSize: 4, numLayers: 3, bias: false },
    ];
    for (const layout of layouts) {
      const specs = kerasWeightSpecs(layout);
      const w = specs.map((s, i) => tf.randomNormal(s.shape, 0, 1, 'float32', i));
      const sd = fromKerasWeights(w, layout);
      const back = toKerasWeights(sd, layout);
      back.forEach((t, i) => expect(Array.from(t.dataSync())).toEqual(Array.from(w[i].dataSync())));
      tf.dispose([...w, ...Object.values(sd), ...back]);
    }
  });
});

describe('kerasWeightSpecs', () => {
  it('lists [kernel, recurrent_kernel, bias] per layer, forward before backward, with tf.layers shapes', () => {
    const specs = kerasWeightSpecs({ inputSize: 3, hiddenSize: 2, numLayers: 2, bidirectional: true });
    expect(specs.map((s) => `${s.layer}${s.reverse ? 'b' : 'f'}:${s.role}:${s.shape.join('x')}`)).toEqual([
      '0f:kernel:3x8',
      '0f:recurrent_kernel:2x8',
      '0f:bias:8',
      '0b:kernel:3x8',
      '0b:recurrent_kernel:2x8',
      '0b:bias:8',
      '1f:kernel:4x8',
      '1f:recurrent_kernel:2x8',
      '1f:bias:8',
      '1b:kernel:4x8',
      '1b:recurrent_kernel:2x8',
      '1b:bias:8',
    ]);
  });

  it('matches the order and shapes of a tf.layers model built from the same layout', () => {
    const spec: KerasSpec = {
      inputSize: 3,
      hiddenSize: 2,
      numLayers: 2,
      bidirectional: true,
      activation: 'relu',
      recurrentActivation: 'sigmoid',
    };
    const model = buildKerasModel(spec);
    try {
      const names = model.weights.map((w) => w.originalName);
      const specs = kerasWeightSpecs(spec);
      expect(model.weights.map((w) => w.shape)).toEqual(specs.map((s) => s.shape));
      specs.forEach((s, i) => {
        expect(names[i]).toContain(s.reverse ? 'backward' : 'forward');
        expect(names[i].endsWith(`/${s.role}`)).toBe(true);
      });
    } finally {
      model.dispose();
    }
  });
});

describe('tf.layers LSTM with converted weights reproduces the PyTorch fixtures', () => {
  const cases = [...KERAS_CASES, ...MORE_CASES].map((f) => [f.name, f] as const);

  it.each(cases)('%s', (_, f) => {
    const model = buildKerasModel(specOf(f));
    const sd = stateDictOf(f);
    const weights = f.keras_weights ? kerasListOf(f) : toKerasWeights(sd, layoutOf(f));
    try {
      model.setWeights(weights);
      const x = tf.tensor3d(f.x);
      const h0 = tf.tensor3d(f.h0);
      const c0 = tf.tensor3d(f.c0);
      const got = runKeras(model, x, h0, c0);
      expect(relErr(got.output.dataSync(), flat(f.expected.output))).toBeLessThan(1e-5);
      expect(relErr(got.hN.dataSync(), flat(f.expected.h_n))).toBeLessThan(1e-5);
      expect(relErr(got.cN.dataSync(), flat(f.expected.c_n))).toBeLessThan(1e-5);
      tf.dispose([x, h0, c0, got.output, got.hN, got.cN]);
    } finally {
      tf.dispose([...Object.values(sd), ...weights]);
      model.dispose();
    }
  });
});

describe('ReluLstm and tf.layers agree through the conversion, both ways', () => {
  const configs: Array<[string, KerasSpec]> = [
    [
      '1 layer',
      {
        inputSize: 3,
        hiddenSize: 5,
        numLayers: 1,
        bidirectional: false,
        activation: 'relu',
        recurrentActivation: 'sigmoid',
      },
    ],
    [
      '2 layers',
      {
        inputSize: 4,
        hiddenSize: 6,
        numLayers: 2,
        bidirectional: false,
        activation: 'relu',
        recurrentActivation: 'sigmoid',
      },
    ],
    [
      '2 bidirectional layers',
      {
        inputSize: 2,
        hiddenSize: 3,
        numLayers: 2,
        bidirectional: true,
        activation: 'relu',
        recurrentActivation: 'sigmoid',
      },
    ],
  ];
  const B = 3;
  const T = 7;

  function compare(lstm: ReluLstm, model: tf.LayersModel, s: KerasSpec, seed: number) {
    const n = s.numLayers * (s.bidirectional ? 2 : 1);
    const x = tf.randomNormal([B, T, s.inputSize], 0, 1, 'float32', seed) as tf.Tensor3D;
    const h0 = tf.randomNormal([n, B, s.hiddenSize], 0, 0.5, 'float32', seed + 1) as tf.Tensor3D;
    const c0 = tf.randomNormal([n, B, s.hiddenSize], 0, 0.5, 'float32', seed + 2) as tf.Tensor3D;
    const zeros = tf.zeros([n, B, s.hiddenSize]) as tf.Tensor3D;
    try {
      for (const [h, c] of [
        [zeros, zeros],
        [h0, c0],
      ]) {
        const ours = lstm.forward(x, { h0: h, c0: c });
        const theirs = runKeras(model, x, h, c);
        expect(ours.output.shape).toEqual(theirs.output.shape);
        expect(relErr(ours.output.dataSync(), theirs.output.dataSync())).toBeLessThan(1e-5);
        expect(relErr(ours.hN.dataSync(), theirs.hN.dataSync())).toBeLessThan(1e-5);
        expect(relErr(ours.cN.dataSync(), theirs.cN.dataSync())).toBeLessThan(1e-5);
        tf.dispose([ours.output, ours.hN, ours.cN, theirs.output, theirs.hN, theirs.cN]);
      }
    } finally {
      tf.dispose([x, h0, c0, zeros]);
    }
  }

  it.each(configs)('%s: Keras weights -> fromKerasWeights -> ReluLstm', (_, s) => {
    const model = buildKerasModel(s);
    const lstm = new ReluLstm({ ...s, batchFirst: true, seed: 1 });
    try {
      // Random Keras weights (the bias too, so both halves of the PyTorch bias matter).
      const w = kerasWeightSpecs(s).map((spec, i) => tf.randomUniform(spec.shape, -0.6, 0.6, 'float32', 100 + i));
      model.setWeights(w);
      const sd = fromKerasWeights(model.getWeights(), s);
      lstm.loadStateDict(sd);
      tf.dispose([...w, ...Object.values(sd)]);
      compare(lstm, model, s, 7);
    } finally {
      lstm.dispose();
      model.dispose();
    }
  });

  it.each(configs)('%s: ReluLstm -> toKerasWeights -> Keras weights', (_, s) => {
    const model = buildKerasModel(s);
    const lstm = new ReluLstm({ ...s, batchFirst: true, seed: 42 });
    try {
      // Make b_ih and b_hh differ, so a conversion that dropped one of them would show.
      const sd = lstm.stateDict();
      for (const name of Object.keys(sd).filter((k) => k.startsWith('bias_hh'))) {
        const old = sd[name];
        sd[name] = tf.randomUniform(old.shape, -0.5, 0.5, 'float32', name.length);
        old.dispose();
      }
      lstm.loadStateDict(sd);
      const w = toKerasWeights(sd, lstm.config);
      model.setWeights(w);
      tf.dispose([...w, ...Object.values(sd)]);
      compare(lstm, model, s, 11);
    } finally {
      lstm.dispose();
      model.dispose();
    }
  });
});

describe('errors', () => {
  const layout: WeightLayout = { inputSize: 3, hiddenSize: 2, numLayers: 2 };

  function goodStateDict(): Record<string, tf.Tensor> {
    return tf.tidy(() =>
      fromKerasWeights(
        kerasWeightSpecs(layout).map((s) => tf.zeros(s.shape)),
        layout,
      ),
    );
  }

  function expectStateDictError(fn: () => unknown, entry: string, ...fragments: string[]) {
    let caught: unknown;
    try {
      fn();
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(StateDictError);
    expect((caught as StateDictError).entry).toBe(entry);
    for (const f of fragments) expect((caught as Error).message).toContain(f);
  }

  it('toKerasWeights: a missing entry', () => {
    const sd = goodStateDict();
    const { bias_hh_l1: dropped, ...rest } = sd;
    expectStateDictError(() => toKerasWeights(rest, layout), 'bias_hh_l1', 'missing', 'shape [8]');
    tf.dispose(Object.values(sd));
    void dropped;
  });

  it('toKerasWeights: an extra entry', () => {
    const sd = goodStateDict();
    const extra = tf.zeros([8, 3]);
    expectStateDictError(
      () => toKerasWeights({ ...sd, weight_ih_l2: extra }, layout),
      'weight_ih_l2',
      'unexpected entry',
      '2-layer unidirectional',
    );
    tf.dispose([...Object.values(sd), extra]);
  });

  it('toKerasWeights: a misshapen entry, a wrong dtype, a disposed tensor, not a tensor', () => {
    const sd = goodStateDict();
    const bad = tf.zeros([8, 3]);
    expectStateDictError(
      () => toKerasWeights({ ...sd, weight_ih_l1: bad }, layout),
      'weight_ih_l1',
      'expected shape [8, 2], got [8, 3]',
    );
    const ints = tf.zeros([8], 'int32');
    expectStateDictError(
      () => toKerasWeights({ ...sd, bias_ih_l0: ints }, layout),
      'bias_ih_l0',
      'expected dtype float32, got int32',
    );
    const gone = tf.zeros([8]);
    gone.dispose();
    expectStateDictError(() => toKerasWeights({ ...sd, bias_ih_l0: gone }, layout), 'bias_ih_l0', 'disposed');
    expectStateDictError(
      () => toKerasWeights({ ...sd, bias_ih_l0: [1, 2] as unknown as tf.Tensor }, layout),
      'bias_ih_l0',
      'expected a float32 tensor of shape [8], got object',
    );
    tf.dispose([...Object.values(sd), bad, ints]);
  });

  it('fromKerasWeights: a wrong count and a misshapen weight', () => {
    const w = kerasWeightSpecs(layout).map((s) => tf.zeros(s.shape));
    expectStateDictError(
      () => fromKerasWeights(w.slice(0, 5), layout),
      'keras_weights',
      'expected 6 tensors',
      'got 5 tensors',
    );
    const bad = tf.zeros([3, 8]);
    const swapped = [...w];
    swapped[3] = bad; // layer 1's kernel reads layer 0's output: [H, 4H] = [2, 8]
    expectStateDictError(
      () => fromKerasWeights(swapped, layout),
      'keras_weights[3] (layer 1 forward kernel)',
      'expected shape [2, 8], got [3, 8]',
    );
    tf.dispose([...w, bad]);
  });

  it('a layout that is not a valid LSTM configuration', () => {
    expect(() => kerasWeightSpecs({ inputSize: 0, hiddenSize: 2 })).toThrow(LstmConfigError);
    expect(() => toKerasWeights({}, { inputSize: 2, hiddenSize: 2.5 })).toThrow(LstmConfigError);
  });
});
