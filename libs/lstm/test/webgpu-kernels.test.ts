/**
 * The LSTM on the webgpu backend (Dawn under Node; lavapipe on a machine without a GPU): every PyTorch
 * reference fixture on both loops (the fused WGSL kernels of wgsl-cell.ts and the generic tfjs-ops
 * loop), forward to 1e-5 and gradients to 1e-4 relative, with flat tensor counts, and the kernel budget
 * per step. Reads are asynchronous throughout (webgpu under Node has no dataSync).
 */
import * as tf from '@tensorflow/tfjs-core';
import { ReluLstm, lstmKernelPath, setLstmKernelPath } from '../src';
import { WGSL_BACKWARD, WGSL_FORWARD } from '../src/wgsl-cell';
import { Fixture, loadFixtures, measureFixture } from './helpers/fixtures';
import { useWebGpu } from './helpers/webgpu';

const fixtures = loadFixtures();
let ready = false;

beforeAll(async () => {
  ready = await useWebGpu('LSTM on webgpu (fixtures, kernel budget)');
});

/** The fixture's errors on the active loop: forward (with the loss) and gradients. */
async function runFixture(fx: Fixture) {
  const { errors, gradErrors, lossErr } = await measureFixture(fx);
  return { forward: { ...errors, loss: lossErr }, grads: gradErrors };
}

/** The largest error of each kind over the fixtures a loop has run, and where, for the summary line. */
type Worst = { error: number; where: string };
const worst: Record<string, { forward: Worst; grads: Worst }> = {};

function note(w: Worst, file: string, errors: Record<string, number>): void {
  for (const [k, e] of Object.entries(errors)) if (e > w.error) Object.assign(w, { error: e, where: `${file} ${k}` });
}

describe.each(['fused', 'generic'] as const)('reference fixtures on webgpu, %s loop', (loop) => {
  beforeAll(() => {
    if (!ready) return;
    setLstmKernelPath(loop === 'fused' ? 'auto' : 'generic');
    expect(lstmKernelPath()).toBe(loop);
    worst[loop] = { forward: { error: 0, where: '' }, grads: { error: 0, where: '' } };
  });
  afterAll(() => {
    setLstmKernelPath('auto');
    if (ready) console.log(`webgpu ${loop} loop, max relative error: ${JSON.stringify(worst[loop])}`);
  });

  it.each(fixtures.map((f) => [f.file, f] as const))('%s matches PyTorch', async (_file, fx) => {
    if (!ready) return;
    const before = tf.memory().numTensors;
    const { forward, grads } = await runFixture(fx);
    for (const [k, e] of Object.entries(forward)) {
      if (!(e < 1e-5)) throw new Error(`${k}: relative error ${e} >= 1e-5`);
    }
    for (const [k, e] of Object.entries(grads)) {
      if (!(e < 1e-4)) throw new Error(`gradient ${k}: relative error ${e} >= 1e-4`);
    }
    note(worst[loop].forward, fx.file, forward);
    note(worst[loop].grads, fx.file, grads);
    expect(tf.memory().numTensors).toBe(before);
  });
});

type Task = 'forward' | 'train';

/** Kernel names of one forward (no tape) or one gradient step of a 1-layer LSTM over `seq` steps. */
async function kernelsOf(task: Task, seq: number, lengths?: number[]): Promise<string[]> {
  const lstm = new ReluLstm({ inputSize: 3, hiddenSize: 4, seed: 1 });
  const x = tf.randomNormal([seq, 2, 3], 0, 1, 'float32', 1) as tf.Tensor3D;
  const vars = [...lstm.parameters().values()];
  const opts = { lengths };
  try {
    const info = await tf.profile(async () => {
      if (task === 'forward') {
        const out = tf.tidy(() => lstm.forward(x, undefined, opts).output);
        await out.data();
        out.dispose();
      } else {
        const { value, grads } = tf.variableGrads(
          () => tf.sum(lstm.forward(x, undefined, opts).output) as tf.Scalar,
          vars,
        );
        await value.data();
        tf.dispose([value, ...Object.values(grads)]);
      }
    });
    return info.kernels.map((k) => k.name);
  } finally {
    x.dispose();
    lstm.dispose();
  }
}

/** Kernels added by one more time step: the loop body alone. */
async function perStep(task: Task): Promise<number> {
  const [a, b] = [await kernelsOf(task, 10), await kernelsOf(task, 20)];
  return (b.length - a.length) / 10;
}

describe('kernel budget on webgpu', () => {
  afterEach(() => setLstmKernelPath('auto'));

  it('fused loop: one WGSL dispatch per step forward and one backward, within 3 and 6 per step', async () => {
    if (!ready) return;
    expect(lstmKernelPath()).toBe('fused');
    const names = await kernelsOf('train', 10);
    expect(names.filter((n) => n === WGSL_FORWARD).length).toBe(10);
    expect(names.filter((n) => n === WGSL_BACKWARD).length).toBe(10);
    const [forward, train] = [await perStep('forward'), await perStep('train')];
    console.log(`webgpu fused loop: ${forward} kernels per step forward, ${train} per training step`);
    expect(forward).toBeLessThanOrEqual(3);
    expect(train).toBeLessThanOrEqual(6);
  });

  it('generic loop: the tfjs ops, no library kernel', async () => {
    if (!ready) return;
    setLstmKernelPath('generic');
    const names = await kernelsOf('train', 10);
    expect(names).not.toContain(WGSL_FORWARD);
    const [forward, train] = [await perStep('forward'), await perStep('train')];
    console.log(`webgpu generic loop: ${forward} kernels per step forward, ${train} per training step`);
    expect(forward).toBeGreaterThan(3);
  });

  it('leaves no tensor and no GPU buffer behind, with and without a mask', async () => {
    if (!ready) return;
    const backendData = () => (tf.engine().backend as unknown as { numDataIds(): number }).numDataIds();
    await kernelsOf('train', 5, [5, 3]);
    const [tensors, data] = [tf.memory().numTensors, backendData()];
    await kernelsOf('forward', 5);
    await kernelsOf('train', 5);
    await kernelsOf('forward', 5, [5, 3]);
    await kernelsOf('train', 5, [5, 3]);
    expect(tf.memory().numTensors).toBe(tensors);
    expect(backendData()).toBe(data);
  });
});
