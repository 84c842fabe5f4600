/**
 * Training on webgpu (Dawn; lavapipe in CI). webgpu under Node cannot read a tensor synchronously,
 * so a run that completes here shows fit, its progress, validation, checkpoints and start state read
 * asynchronously. The same run on cpu is the comparison: same seed, same batches, float32 on both.
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/backend';
import { addMany, globalNorm } from '../src/clip';
import type { SequenceModelOptions } from '../src/config';
import { FitOptions, FitResult, fit } from '../src/fit';
import { SequenceModel } from '../src/sequence-model';
import { sineForecast } from '../src/synthetic';
import type { TrainingState } from '../src/training-state';
import { useWebgpuBackend } from './helpers/webgpu';

const MODEL: SequenceModelOptions = {
  lstm: { inputSize: 1, hiddenSize: 8, numLayers: 2, batchFirst: true, seed: 5 },
  outputSize: 1,
};
const data = sineForecast({ samples: 24, seqLen: 6, seed: 4 });

async function train(): Promise<{ result: FitResult; checkpoints: TrainingState[]; progress: number }> {
  const model = new SequenceModel(MODEL);
  const checkpoints: TrainingState[] = [];
  let progress = 0;
  const options: FitOptions = {
    epochs: 4,
    batchSize: 8,
    optimizer: { name: 'adam', learningRate: 0.02 },
    loss: 'mse',
    seed: 1,
    validationSplit: 0.25,
    clipNorm: 5,
    progressEvery: 1,
    onProgress: () => {
      progress++;
    },
    onCheckpoint: (s) => {
      checkpoints.push(s);
    },
    initialState: { h0: { data: new Float32Array(16).fill(0.1), shape: [2, 1, 8] }, c0: tf.zeros([2, 1, 8]) },
  };
  try {
    return { result: await fit(model, data, options), checkpoints, progress };
  } finally {
    tf.dispose(options.initialState!.c0 as tf.Tensor);
    model.dispose();
  }
}

describe('fit on webgpu', () => {
  const suite = useWebgpuBackend('fit on webgpu');

  it('trains (loss falls), reports, checkpoints, and matches the same run on cpu', async () => {
    if (suite.info === null) return;
    const before = tf.memory().numTensors;
    const gpu = await train();
    expect(tf.getBackend()).toBe('webgpu');
    expect(tf.memory().numTensors).toBe(before);

    const losses = gpu.result.history.map((h) => h.loss);
    expect(losses).toHaveLength(4);
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(losses[3]).toBeLessThan(losses[0]);
    expect(gpu.progress).toBe(gpu.result.steps);
    expect(gpu.checkpoints).toHaveLength(4);

    await initBackend('cpu');
    try {
      const cpu = await train();
      for (const [i, h] of cpu.result.history.entries()) {
        expect(Math.abs(losses[i] - h.loss)).toBeLessThan(1e-3 * Math.max(1, Math.abs(h.loss)));
      }
    } finally {
      await initBackend('webgpu');
    }
  });

  it('checkFinite reads asynchronously and names the bad tensor', async () => {
    if (suite.info === null) return;
    const model = new SequenceModel(MODEL);
    const x = tf.tensor3d([[[1], [NaN]]]);
    try {
      await expect(model.lstm.checkFinite(x)).rejects.toThrow(/x: expected finite values, got NaN or Infinity/);
    } finally {
      x.dispose();
      model.dispose();
    }
  });
});

describe('sums of many tensors on webgpu', () => {
  const suite = useWebgpuBackend('sums of many tensors on webgpu');

  it('addMany and globalNorm are right past the 8 storage buffers a plain AddN may bind', async () => {
    if (suite.info === null) return;
    const before = tf.memory().numTensors;
    const parts = Array.from({ length: 17 }, (_, i) => tf.fill([3], i + 1));
    const sum = addMany(parts);
    const norm = globalNorm(parts);
    // 3 * sum(1..17) and sqrt(3 * sum(k^2, 1..17)).
    expect(Array.from(await sum.data())).toEqual([153, 153, 153]);
    expect((await norm.data())[0]).toBeCloseTo(Math.sqrt(3 * 1785), 3);
    tf.dispose([...parts, sum, norm]);
    expect(tf.memory().numTensors).toBe(before);
  });
});
