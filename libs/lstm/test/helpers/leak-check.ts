import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';

/**
 * Runs the file's tests on the cpu backend and fails any test that leaves tensors behind
 * (`tf.memory().numTensors` back to its value before the test).
 */
export function useCpuBackendWithLeakCheck(): void {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });
  let baseline = 0;
  beforeEach(() => {
    baseline = tf.memory().numTensors;
  });
  afterEach(() => {
    expect(tf.memory().numTensors).toBe(baseline);
  });
}
