/** Behaviour of ReluLstm beyond the reference numbers: state, layouts, options, errors, memory. */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { LstmConfigError, LstmInputError, ReluLstm, StateDictError } from '../src';
import { useCpuBackendWithLeakCheck } from './helpers/leak-check';

useCpuBackendWithLeakCheck();

/** Element-wise |a - b| <= tol (tfjs's own helper needs jasmine). */
function expectClose(a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-5) {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  expect(worst).toBeLessThanOrEqual(tol);
}

function randn(shape: number[], seed: number): tf.Tensor {
  return tf.randomNormal(shape, 0, 1, 'float32', seed);
}

describe('ReluLstm', () => {
  it('carries the state from step to step: the output at step t depends on the input at step t-1', () => {
    const lstm = new ReluLstm({ inputSize: 3, hiddenSize: 8, seed: 3 });
    tf.tidy(() => {
      const x = randn([5, 2, 3], 1);
      // Change only step 2; steps 0-1 must be unchanged, step 3 (and later) must move.
      const bump = tf.concat(
        [tf.zeros([2, 2, 3]), tf.onesLike(tf.slice(x, [2, 0, 0], [1, 2, 3])), tf.zeros([2, 2, 3])],
        0,
      );
      const a = lstm.forward(x as tf.Tensor3D).output;
      const b = lstm.forward(tf.add(x, bump) as tf.Tensor3D).output;
      const diffPerStep = tf.max(tf.abs(tf.sub(a, b)), [1, 2]).arraySync() as number[];
      expect(diffPerStep[0]).toBe(0);
      expect(diffPerStep[1]).toBe(0);
      expect(diffPerStep[3]).toBeGreaterThan(1e-4);
    });
    lstm.dispose();
  });

  it('has torch.nn.LSTM shapes, time-major by default and batch-first on request', () => {
    const opts = { inputSize: 3, hiddenSize: 4, numLayers: 2, bidirectional: true, seed: 7 };
    const tm = new ReluLstm(opts);
    const bf = new ReluLstm({ ...opts, batchFirst: true });
    tf.tidy(() => {
      const x = randn([6, 2, 3], 2) as tf.Tensor3D; // [T, B, I]
      const a = tm.forward(x);
      const b = bf.forward(tf.transpose(x, [1, 0, 2]) as tf.Tensor3D);
      expect(a.output.shape).toEqual([6, 2, 8]);
      expect(b.output.shape).toEqual([2, 6, 8]);
      expect(a.hN.shape).toEqual([4, 2, 4]);
      expect(a.cN.shape).toEqual([4, 2, 4]);
      expectClose(tf.transpose(b.output, [1, 0, 2]).dataSync(), a.output.dataSync());
      expectClose(b.hN.dataSync(), a.hN.dataSync());
    });
    tm.dispose();
    bf.dispose();
  });

  it('reports the final state of the last layer as the last output step (forward direction)', () => {
    const lstm = new ReluLstm({ inputSize: 2, hiddenSize: 5, numLayers: 2, seed: 1 });
    tf.tidy(() => {
      const { output, hN } = lstm.forward(randn([4, 3, 2], 5) as tf.Tensor3D);
      const last = tf.slice(output, [3, 0, 0], [1, 3, 5]);
      const hLast = tf.slice(hN, [1, 0, 0], [1, 3, 5]);
      expectClose(last.dataSync(), hLast.dataSync());
    });
    lstm.dispose();
  });

  it('is deterministic for a seed and uses PyTorch default init bounds', () => {
    const a = new ReluLstm({ inputSize: 3, hiddenSize: 16, seed: 42 });
    const b = new ReluLstm({ inputSize: 3, hiddenSize: 16, seed: 42 });
    const c = new ReluLstm({ inputSize: 3, hiddenSize: 16, seed: 43 });
    const wa = a.parameters().get('weight_hh_l0')!.dataSync();
    expect(Array.from(b.parameters().get('weight_hh_l0')!.dataSync())).toEqual(Array.from(wa));
    expect(Array.from(c.parameters().get('weight_hh_l0')!.dataSync())).not.toEqual(Array.from(wa));
    const k = 1 / Math.sqrt(16);
    expect(Math.max(...Array.from(wa).map(Math.abs))).toBeLessThanOrEqual(k);
    expect(Math.max(...Array.from(wa).map(Math.abs))).toBeGreaterThan(0.9 * k);
    [a, b, c].forEach((m) => m.dispose());
  });

  it('forgetBias sets the effective forget-gate bias to 1; orthogonalRecurrent gives orthogonal gate blocks', () => {
    const H = 6;
    const lstm = new ReluLstm({ inputSize: 2, hiddenSize: H, forgetBias: true, orthogonalRecurrent: true, seed: 9 });
    tf.tidy(() => {
      const p = lstm.parameters();
      const b = tf.add(p.get('bias_ih_l0')!, p.get('bias_hh_l0')!);
      expect(Array.from(tf.slice(b, [H], [H]).dataSync())).toEqual(new Array(H).fill(1));
      for (let gate = 0; gate < 4; gate++) {
        const w = tf.slice(p.get('weight_hh_l0')!, [gate * H, 0], [H, H]);
        const wwT = tf.matMul(w, w, false, true);
        expectClose(wwT.dataSync(), tf.eye(H).dataSync(), 1e-5);
      }
    });
    lstm.dispose();
  });

  it('applies dropout between layers only in training, reproducibly from the seed', () => {
    const opts = { inputSize: 2, hiddenSize: 8, numLayers: 2, dropout: 0.5, seed: 4 };
    const a = new ReluLstm(opts);
    const b = new ReluLstm(opts);
    tf.tidy(() => {
      const x = randn([5, 3, 2], 3) as tf.Tensor3D;
      const evalOut = a.forward(x).output;
      expectClose(a.forward(x).output.dataSync(), evalOut.dataSync());
      const trainA = a.forward(x, undefined, { training: true }).output;
      const trainB = b.forward(x, undefined, { training: true }).output;
      expect(tf.max(tf.abs(tf.sub(trainA, evalOut))).dataSync()[0]).toBeGreaterThan(1e-4);
      expectClose(trainA.dataSync(), trainB.dataSync());
    });
    a.dispose();
    b.dispose();
  });

  it('lengths: outputs past a length are zero and hN is the state at the last valid step', () => {
    const lstm = new ReluLstm({ inputSize: 2, hiddenSize: 4, batchFirst: true, seed: 2 });
    tf.tidy(() => {
      const x = randn([2, 5, 2], 8) as tf.Tensor3D;
      const { output, hN, cN } = lstm.forward(x, undefined, { lengths: [5, 3] });
      const padded = tf.slice(output, [1, 3, 0], [1, 2, 4]);
      expect(Array.from(padded.dataSync())).toEqual(new Array(8).fill(0));
      // The same sequence cut to length 3 and run alone gives the same final state.
      const alone = lstm.forward(tf.slice(x, [1, 0, 0], [1, 3, 2]) as tf.Tensor3D);
      expectClose(tf.slice(hN, [0, 1, 0], [1, 1, 4]).dataSync(), alone.hN.dataSync());
      expectClose(tf.slice(cN, [0, 1, 0], [1, 1, 4]).dataSync(), alone.cN.dataSync());
    });
    lstm.dispose();
  });

  it('gradients reach the input, the initial state and every parameter, also for sequence length 1', () => {
    const lstm = new ReluLstm({ inputSize: 2, hiddenSize: 3, numLayers: 1, seed: 5 });
    tf.tidy(() => {
      const x = randn([1, 1, 2], 1);
      const h0 = randn([1, 1, 3], 2);
      const c0 = randn([1, 1, 3], 3);
      const f = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => {
        const r = lstm.forward(a as tf.Tensor3D, { h0: b as tf.Tensor3D, c0: c as tf.Tensor3D });
        return tf.add(tf.sum(r.output), tf.sum(r.cN)) as tf.Scalar;
      };
      const [gx, gh, gc] = tf.grads(f)([x, h0, c0]);
      for (const g of [gx, gh, gc]) expect(tf.sum(tf.abs(g)).dataSync()[0]).toBeGreaterThan(0);
      const { grads } = tf.variableGrads(() => f(x, h0, c0));
      expect(Object.keys(grads).length).toBe(4);
    });
    lstm.dispose();
  });

  it('broadcasts a batch-1 initial state over the batch, values and gradients', () => {
    const lstm = new ReluLstm({ inputSize: 2, hiddenSize: 3, numLayers: 2, seed: 6 });
    tf.tidy(() => {
      const x = randn([4, 5, 2], 11) as tf.Tensor3D;
      const h1 = randn([2, 1, 3], 12) as tf.Tensor3D;
      const c1 = randn([2, 1, 3], 13) as tf.Tensor3D;
      const loss = (h: tf.Tensor, c: tf.Tensor) => {
        const r = lstm.forward(x, { h0: h as tf.Tensor3D, c0: c as tf.Tensor3D });
        return tf.add(tf.sum(r.output), tf.sum(r.cN)) as tf.Scalar;
      };
      const tiled = (t: tf.Tensor) => tf.tile(t, [1, 5, 1]);
      expectClose(loss(h1, c1).dataSync(), loss(tiled(h1), tiled(c1)).dataSync());
      const [gh, gc] = tf.grads(loss)([h1, c1]);
      const [ghT, gcT] = tf.grads(loss)([tiled(h1), tiled(c1)]);
      expect(gh.shape).toEqual([2, 1, 3]);
      expectClose(gh.dataSync(), tf.sum(ghT, 1, true).dataSync(), 1e-4);
      expectClose(gc.dataSync(), tf.sum(gcT, 1, true).dataSync(), 1e-4);
    });
    lstm.dispose();
  });

  describe('bad input', () => {
    const lstm = new ReluLstm({ inputSize: 3, hiddenSize: 4 });
    afterAll(() => lstm.dispose());

    it('rejects a wrong rank', () => {
      const x = tf.zeros([2, 3]);
      expect(() => lstm.forward(x as unknown as tf.Tensor3D)).toThrow(
        /x: expected rank 3 \[seq, batch, inputSize\], got rank 2 shape \[2,3\]/,
      );
      x.dispose();
    });
    it('rejects a wrong input size', () => {
      const x = tf.zeros([2, 1, 5]) as tf.Tensor3D;
      expect(() => lstm.forward(x)).toThrow(LstmInputError);
      expect(() => lstm.forward(x)).toThrow(/inputSize = 3.*got shape \[2,1,5\]/);
      x.dispose();
    });
    it('rejects mismatched state shapes', () => {
      const x = tf.zeros([2, 1, 3]) as tf.Tensor3D;
      const h0 = tf.zeros([1, 2, 4]) as tf.Tensor3D;
      const c0 = tf.zeros([1, 1, 4]) as tf.Tensor3D;
      expect(() => lstm.forward(x, { h0, c0 })).toThrow(/h0: expected shape \[1,1,4\].*got shape \[1,2,4\]/);
      tf.dispose([x, h0, c0]);
    });
    it('checkFinite rejects NaN or Infinity in the input and the state, naming the tensor', async () => {
      const x = tf.tensor3d([[[1, NaN, 0]]]);
      const ok = tf.zeros([1, 1, 3]) as tf.Tensor3D;
      const h0 = tf.tensor3d([[[0, Infinity, 0, 0]]]);
      const c0 = tf.zeros([1, 1, 4]) as tf.Tensor3D;
      const before = tf.memory().numTensors;
      await expect(lstm.checkFinite(x)).rejects.toThrow(/x: expected finite values, got NaN or Infinity/);
      await expect(lstm.checkFinite(ok, { h0, c0 })).rejects.toThrow(/h0: expected finite values, got NaN or Infinity/);
      await expect(lstm.checkFinite(ok, { h0: c0, c0 })).resolves.toBeUndefined();
      expect(tf.memory().numTensors).toBe(before);
      tf.dispose([x, ok, h0, c0]);
    });
    it('rejects bad lengths', () => {
      const x = tf.zeros([2, 2, 3]) as tf.Tensor3D;
      expect(() => lstm.forward(x, undefined, { lengths: [2, 3] })).toThrow(
        /lengths\[1\]: expected an integer in 1..2, got 3/,
      );
      expect(() => lstm.forward(x, undefined, { lengths: [2] })).toThrow(/lengths: expected 2 lengths/);
      x.dispose();
    });
    it('rejects unknown activation names and bad options', () => {
      expect(() => new ReluLstm({ inputSize: 1, hiddenSize: 2, activation: 'gelu' as never })).toThrow(
        /activation: expected one of relu, tanh, relu6, clippedRelu, linear, got "gelu"/,
      );
      expect(() => new ReluLstm({ inputSize: 1, hiddenSize: 2, recurrentActivation: 'relu' as never })).toThrow(
        LstmConfigError,
      );
      expect(() => new ReluLstm({ inputSize: 0, hiddenSize: 2 })).toThrow(
        /inputSize: expected a positive integer, got 0/,
      );
      expect(() => new ReluLstm({ inputSize: 1, hiddenSize: 2, dropout: 1 })).toThrow(/dropout/);
      expect(() => new ReluLstm({ inputSize: 1, hiddenSize: 2, activation: 'clippedRelu' })).toThrow(/cellClip/);
      expect(() => new ReluLstm({ inputSize: 1, hiddenSize: 2, hidenSize: 3 } as never)).toThrow(/hidenSize/);
    });
  });

  describe('loadStateDict', () => {
    it('accepts tensors, typed arrays with shapes and nested arrays', () => {
      const src = new ReluLstm({ inputSize: 2, hiddenSize: 3, seed: 1 });
      const dst = new ReluLstm({ inputSize: 2, hiddenSize: 3, seed: 2 });
      const sd = src.stateDict();
      const mixed = {
        weight_ih_l0: sd.weight_ih_l0,
        weight_hh_l0: { data: sd.weight_hh_l0.dataSync(), shape: sd.weight_hh_l0.shape },
        bias_ih_l0: sd.bias_ih_l0.arraySync() as number[],
        bias_hh_l0: { data: Array.from(sd.bias_hh_l0.dataSync()), shape: [12] },
      };
      dst.loadStateDict(mixed);
      for (const [name, v] of dst.parameters())
        expect(Array.from(v.dataSync())).toEqual(Array.from(sd[name].dataSync()));
      tf.dispose(Object.values(sd));
      src.dispose();
      dst.dispose();
    });
    it('names a missing, an extra and a misshapen entry and leaves the model unchanged', () => {
      const m = new ReluLstm({ inputSize: 2, hiddenSize: 3 });
      const sd = m.stateDict();
      const before = Array.from(m.parameters().get('weight_ih_l0')!.dataSync());
      const { bias_hh_l0, ...missing } = sd;
      expect(() => m.loadStateDict(missing)).toThrow(/bias_hh_l0: missing entry of shape \[12\]/);
      expect(() => m.loadStateDict({ ...sd, weight_ih_l1: sd.weight_ih_l0 })).toThrow(/weight_ih_l1: unexpected entry/);
      const wrong = tf.zeros([12, 3]);
      expect(() => m.loadStateDict({ ...sd, weight_ih_l0: wrong })).toThrow(StateDictError);
      expect(() => m.loadStateDict({ ...sd, weight_ih_l0: wrong })).toThrow(
        /weight_ih_l0: expected shape \[12, 2\], got \[12, 3\]/,
      );
      expect(() => m.loadStateDict({ ...sd, bias_ih_l0: [[1, 2], [3]] as never })).toThrow(/bias_ih_l0\[1\]: ragged/);
      expect(Array.from(m.parameters().get('weight_ih_l0')!.dataSync())).toEqual(before);
      tf.dispose([...Object.values(sd), wrong, bias_hh_l0]);
      m.dispose();
    });
  });
});
