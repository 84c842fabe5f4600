/**
 * Which kernels the time loop launches: the generic loop's budget per step (what tfjs-node and webgl
 * run), the fused loop's library kernels on cpu and wasm, the path switch, and the wasm row-slice
 * kernel. Kernel counts are deterministic (tf.profile lists every kernel), unlike times, which the
 * benchmark measures (bench/).
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { LstmConfigError, ReluLstm, lstmKernelPath, setLstmKernelPath } from '../src';
import { CELL_BACKWARD, CELL_FORWARD } from '../src/fused-cell';
import { ROWS_KERNEL, sliceRows } from '../src/rows';

type Task = 'forward' | 'train';

/** Kernel names launched by one forward (no tape) or one gradient step of a 1-layer LSTM over `seq` steps. */
async function kernelsOf(task: Task, seq: number): Promise<string[]> {
  const lstm = new ReluLstm({ inputSize: 3, hiddenSize: 4, seed: 1 });
  const x = tf.randomNormal([seq, 2, 3], 0, 1, 'float32', 1) as tf.Tensor3D;
  const vars = [...lstm.parameters().values()];
  try {
    const info = await tf.profile(() => {
      if (task === 'forward') {
        tf.dispose(tf.tidy(() => lstm.forward(x).output));
      } else {
        const { value, grads } = tf.variableGrads(() => tf.sum(lstm.forward(x).output) as tf.Scalar, vars);
        tf.dispose([value, ...Object.values(grads)]);
      }
    });
    return info.kernels.map((k) => k.name);
  } finally {
    x.dispose();
    lstm.dispose();
  }
}

/** Kernels added by one more time step: the loop body alone, without the per-call set-up. */
async function perStep(task: Task): Promise<number> {
  const [a, b] = [await kernelsOf(task, 10), await kernelsOf(task, 20)];
  return (b.length - a.length) / 10;
}

describe('generic-ops loop on cpu (the loop tfjs-node and webgl run)', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
    setLstmKernelPath('generic');
  });
  afterAll(() => setLstmKernelPath('auto'));

  it('launches at most 10 kernels per step forward and 18 per step for a training step', async () => {
    expect(lstmKernelPath()).toBe('generic');
    expect(await perStep('forward')).toBeLessThanOrEqual(10);
    expect(await perStep('train')).toBeLessThanOrEqual(18);
  });

  it('folds the input projection into the recurrent product (_FusedMatMul) and uses no library kernel', async () => {
    const names = await kernelsOf('train', 10);
    expect(names.filter((n) => n === '_FusedMatMul').length).toBeGreaterThanOrEqual(10);
    expect(names).not.toContain(CELL_FORWARD);
    expect(names).not.toContain(CELL_BACKWARD);
  });
});

describe.each(['cpu', 'wasm'])('fused loop on %s', (backend) => {
  beforeAll(async () => {
    await tf.setBackend(backend);
    await tf.ready();
  });

  it('runs one library kernel and one product per step, forward and backward', async () => {
    expect(lstmKernelPath()).toBe('fused');
    const names = await kernelsOf('train', 10);
    expect(names.filter((n) => n === CELL_FORWARD).length).toBe(10);
    expect(names.filter((n) => n === CELL_BACKWARD).length).toBe(10);
    expect(await perStep('forward')).toBe(2);
    expect(await perStep('train')).toBe(4);
  });

  it('leaves no tensor behind, forward or training', async () => {
    const before = tf.memory().numTensors;
    await kernelsOf('forward', 5);
    await kernelsOf('train', 5);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('frees its scratch buffers (no backend data left that no tensor owns), with and without a mask', () => {
    // The kernels allocate backend data directly (scratch gates, outputs): a buffer they forget is no
    // tensor, so numTensors above cannot see it; the backend's own count can.
    const backendData = () => (tf.engine().backend as unknown as { numDataIds(): number }).numDataIds();
    const lstm = new ReluLstm({ inputSize: 3, hiddenSize: 4, bidirectional: true, seed: 1 });
    const x = tf.randomNormal([5, 2, 3], 0, 1, 'float32', 1) as tf.Tensor3D;
    const vars = [...lstm.parameters().values()];
    const once = (lengths?: number[]) => {
      tf.dispose(tf.tidy(() => lstm.forward(x, undefined, { lengths }).output));
      const { value, grads } = tf.variableGrads(
        () => tf.sum(lstm.forward(x, undefined, { lengths }).output) as tf.Scalar,
        vars,
      );
      tf.dispose([value, ...Object.values(grads)]);
    };
    try {
      once([5, 3]);
      const before = backendData();
      once();
      once([5, 3]);
      expect(backendData()).toBe(before);
    } finally {
      x.dispose();
      lstm.dispose();
    }
  });
});

describe('setLstmKernelPath', () => {
  afterEach(() => setLstmKernelPath('auto'));

  it('rejects an unknown choice with the field, the expected and the actual value', () => {
    expect(() => setLstmKernelPath('fast' as never)).toThrow(LstmConfigError);
    expect(() => setLstmKernelPath('fast' as never)).toThrow(/kernelPath: expected 'auto' or 'generic', got "?fast"?/);
  });

  it("'generic' applies to every backend, 'auto' takes the fused loop only where it is registered", () => {
    expect(lstmKernelPath('wasm')).toBe('fused');
    expect(lstmKernelPath('cpu')).toBe('fused');
    expect(lstmKernelPath('webgpu')).toBe('fused');
    expect(lstmKernelPath('tensorflow')).toBe('generic');
    expect(lstmKernelPath('webgl')).toBe('generic');
    setLstmKernelPath('generic');
    expect(lstmKernelPath('wasm')).toBe('generic');
  });
});

describe('sliceRows on wasm (library kernel)', () => {
  beforeAll(async () => {
    await tf.setBackend('wasm');
    await tf.ready();
  });

  it("gives tf.slice's rows and gradient", async () => {
    const before = tf.memory().numTensors;
    const x = tf.tensor3d(
      Array.from({ length: 24 }, (_, i) => i),
      [4, 3, 2],
    );
    const w = tf.tensor3d(
      Array.from({ length: 12 }, (_, i) => i * 0.5 - 2),
      [2, 3, 2],
    );
    const profile = await tf.profile(() => tf.dispose(sliceRows(x, 1, 2)));
    expect(profile.kernels.map((k) => k.name)).toEqual([ROWS_KERNEL]);
    const ours = sliceRows(x, 1, 2);
    expect(Array.from(ours.dataSync())).toEqual(Array.from({ length: 12 }, (_, i) => i + 6));
    const grad = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(sliceRows(t as tf.Tensor3D, 1, 2), w)))(x);
    const expected = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.slice(t, [1, 0, 0], [2, 3, 2]), w)))(x);
    expect(Array.from(grad.dataSync())).toEqual(Array.from(expected.dataSync()));
    expect(grad.dataSync()[0]).toBe(0); // row 0 is outside the slice
    tf.dispose([x, w, ours, grad, expected]);
    expect(tf.memory().numTensors).toBe(before);
  });
});
