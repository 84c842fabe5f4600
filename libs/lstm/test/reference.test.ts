/**
 * The model against PyTorch float64 reference cases (an independent implementation of the same math):
 * forward to 1e-5 and gradients of the weighted-sum loss to 1e-4 (max |diff| / max |ref| per tensor),
 * on the cpu and the wasm backend.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { ReluLstm } from '../src';
import { lstmKernelPath, setLstmKernelPath } from '../src/kernel-path';
import { Fixture, fixtureOptions, loadFixtures, relErr } from './helpers/fixtures';

const fixtures = loadFixtures();

function run(fx: Fixture) {
  const lstm = new ReluLstm(fixtureOptions(fx));
  lstm.loadStateDict(fx.state_dict);
  const x = tf.tensor3d(fx.x);
  const h0 = tf.tensor3d(fx.h0);
  const c0 = tf.tensor3d(fx.c0);
  const R = tf.tensor3d(fx.loss_weights.R);
  const Rh = tf.tensor3d(fx.loss_weights.Rh);
  const Rc = tf.tensor3d(fx.loss_weights.Rc);
  const lengths = fx.config.lengths ?? undefined;
  const lossOf = (xx: tf.Tensor, hh: tf.Tensor, cc: tf.Tensor) => {
    const { output, hN, cN } = lstm.forward(
      xx as tf.Tensor3D,
      { h0: hh as tf.Tensor3D, c0: cc as tf.Tensor3D },
      { lengths },
    );
    return tf.addN([tf.sum(tf.mul(output, R)), tf.sum(tf.mul(hN, Rh)), tf.sum(tf.mul(cN, Rc))]) as tf.Scalar;
  };
  const fwd = lstm.forward(x, { h0, c0 }, { lengths });
  const errors: Record<string, number> = {
    output: relErr(fwd.output, fx.expected.output),
    h_n: relErr(fwd.hN, fx.expected.h_n),
    c_n: relErr(fwd.cN, fx.expected.c_n),
  };
  const inputGrads = tf.grads(lossOf)([x, h0, c0]);
  const gradErrors: Record<string, number> = {
    x: relErr(inputGrads[0], fx.grads.x),
    h0: relErr(inputGrads[1], fx.grads.h0),
    c0: relErr(inputGrads[2], fx.grads.c0),
  };
  const { value, grads } = tf.variableGrads(() => lossOf(x, h0, c0), [...lstm.parameters().values()]);
  const lossErr = Math.abs(value.dataSync()[0] - fx.loss) / Math.max(1, Math.abs(fx.loss));
  for (const [name, v] of lstm.parameters()) gradErrors[name] = relErr(grads[v.name], fx.grads[name]);
  tf.dispose([x, h0, c0, R, Rh, Rc, fwd.output, fwd.hN, fwd.cN, ...inputGrads, value, ...Object.values(grads)]);
  lstm.dispose();
  return { errors, gradErrors, lossErr };
}

describe.each(['cpu', 'wasm'])("reference fixtures on %s (the library's fused step kernels)", (backend) => {
  beforeAll(async () => {
    await tf.setBackend(backend);
    await tf.ready();
    expect(lstmKernelPath()).toBe('fused');
  });

  it.each(fixtures.map((f) => [f.file, f] as const))('%s matches PyTorch', (_file, fx) => {
    const before = tf.memory().numTensors;
    const { errors, gradErrors, lossErr } = run(fx);
    // Named failures: a bare toBeLessThan would not say which tensor is off.
    for (const [k, e] of Object.entries(errors)) {
      if (!(e < 1e-5)) throw new Error(`${k}: relative error ${e} >= 1e-5`);
    }
    for (const [k, e] of Object.entries(gradErrors)) {
      if (!(e < 1e-4)) throw new Error(`gradient ${k}: relative error ${e} >= 1e-4`);
    }
    expect(lossErr).toBeLessThan(1e-5);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe.each(['cpu', 'wasm'])('generic-ops path (what GPU backends run) on %s', (backend) => {
  beforeAll(async () => {
    await tf.setBackend(backend);
    setLstmKernelPath('generic');
    expect(lstmKernelPath()).toBe('generic');
  });
  afterAll(() => setLstmKernelPath('auto'));

  it.each(fixtures.map((f) => [f.file, f] as const))('%s matches PyTorch', (_file, fx) => {
    const before = tf.memory().numTensors;
    const { errors, gradErrors } = run(fx);
    for (const [k, e] of Object.entries({ ...errors, ...gradErrors })) {
      if (!(e < 1e-4)) throw new Error(`${k}: relative error ${e} >= 1e-4`);
    }
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('the tolerance tells plausible wrong implementations apart', () => {
  beforeAll(() => tf.setBackend('cpu'));

  it.each(fixtures.filter((f) => (f.config.activation ?? 'relu') === 'relu').map((f) => [f.file, f] as const))(
    '%s: a tanh LSTM with the same weights misses the reference',
    (_file, fx) => {
      const lstm = new ReluLstm({ ...fixtureOptions(fx), activation: 'tanh' });
      lstm.loadStateDict(fx.state_dict);
      const err = tf.tidy(() => {
        const out = lstm.forward(
          tf.tensor3d(fx.x),
          { h0: tf.tensor3d(fx.h0), c0: tf.tensor3d(fx.c0) },
          { lengths: fx.config.lengths ?? undefined },
        );
        return relErr(out.output, fx.expected.output);
      });
      expect(err).toBeGreaterThan(1e-3);
      lstm.dispose();
    },
  );
});
