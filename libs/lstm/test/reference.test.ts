/**
 * The model against PyTorch float64 reference cases (an independent implementation of the same math):
 * forward to 1e-5 and gradients of the weighted-sum loss to 1e-4 (max |diff| / max |ref| per tensor),
 * on the cpu and the wasm backend, and on webgpu (Dawn; lavapipe in CI). Every read is asynchronous:
 * webgpu under Node cannot read synchronously.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { ReluLstm } from '../src';
import { lstmKernelPath, setLstmKernelPath } from '../src/kernel-path';
import { fixtureOptions, loadFixtures, measureFixture as run, relErr } from './helpers/fixtures';
import { useWebgpuBackend } from './helpers/webgpu';

const fixtures = loadFixtures();

describe.each(['cpu', 'wasm'])("reference fixtures on %s (the library's fused step kernels)", (backend) => {
  beforeAll(async () => {
    await tf.setBackend(backend);
    await tf.ready();
    expect(lstmKernelPath()).toBe('fused');
  });

  it.each(fixtures.map((f) => [f.file, f] as const))('%s matches PyTorch', async (_file, fx) => {
    const before = tf.memory().numTensors;
    const { errors, gradErrors, lossErr } = await run(fx);
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

  it.each(fixtures.map((f) => [f.file, f] as const))('%s matches PyTorch', async (_file, fx) => {
    const before = tf.memory().numTensors;
    const { errors, gradErrors } = await run(fx);
    for (const [k, e] of Object.entries({ ...errors, ...gradErrors })) {
      if (!(e < 1e-4)) throw new Error(`${k}: relative error ${e} >= 1e-4`);
    }
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('generic-ops path on webgpu (Dawn), at the cpu/wasm tolerances', () => {
  const suite = useWebgpuBackend('reference fixtures on webgpu');
  const worst = { forward: 0, gradient: 0, loss: 0 };
  beforeAll(() => setLstmKernelPath('generic'));
  afterAll(() => {
    setLstmKernelPath('auto');
    if (suite.info !== null) {
      process.stdout.write(
        `webgpu fixtures (${suite.info.device}): max forward error ${worst.forward.toExponential(2)}, ` +
          `max gradient error ${worst.gradient.toExponential(2)}, max loss error ${worst.loss.toExponential(2)}\n`,
      );
    }
  });

  it.each(fixtures.map((f) => [f.file, f] as const))('%s matches PyTorch', async (_file, fx) => {
    if (suite.info === null) return;
    expect(lstmKernelPath()).toBe('generic');
    const before = tf.memory().numTensors;
    const { errors, gradErrors, lossErr } = await run(fx);
    worst.forward = Math.max(worst.forward, ...Object.values(errors));
    worst.gradient = Math.max(worst.gradient, ...Object.values(gradErrors));
    worst.loss = Math.max(worst.loss, lossErr);
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
