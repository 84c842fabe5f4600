import { LstmConfigError } from './errors';
import { Rng } from './rng';

/**
 * Seeded synthetic sequence tasks, for tests, benchmarks and smoke-test jobs. Every generator returns
 * row-major float32 data with its shape (`{ data, shape }`, the form `fit` and `loadStateDict` accept
 * alongside nested arrays and tensors), batch-first: x is [samples, seqLen, features]. The same
 * options and seed always give the same bytes.
 */
export interface ShapedArray {
  data: Float32Array;
  shape: number[];
}

export interface SyntheticDataset {
  /** [samples, seqLen, features] */
  x: ShapedArray;
  /** [samples, seqLen, outputs] for many-to-many tasks, [samples, outputs] for last-step tasks. */
  y: ShapedArray;
  /** The head the task is meant for. */
  head: 'manyToMany' | 'lastStep';
  /** Mean squared error of the best constant predictor (the per-output mean of y) on this data. */
  trivialMse: number;
}

export interface SineForecastOptions {
  samples: number;
  seqLen: number;
  seed: number;
  /** Standard deviation of the Gaussian noise added to every observed value. Default 0.05. */
  noise?: number;
  /** Range of the period, in steps, drawn uniformly per sequence. Default [8, 24]. */
  minPeriod?: number;
  maxPeriod?: number;
  /** Range of the amplitude, drawn uniformly per sequence. Default [0.5, 1]. */
  minAmplitude?: number;
  maxAmplitude?: number;
}

/**
 * Next-step prediction of noisy sine waves: each sequence is s_t = A sin(2 pi t / P + phi) + noise for
 * t = 0..seqLen, with A, P and phi drawn per sequence (phi uniform in [0, 2 pi)); x_t = s_t and
 * y_t = s_{t+1}. x [samples, seqLen, 1], y [samples, seqLen, 1]; many-to-many, loss mse.
 */
export function sineForecast(options: SineForecastOptions): SyntheticDataset {
  const { samples, seqLen, seed } = options;
  checkCommon(samples, seqLen, seed);
  const noise = nonNegative('noise', options.noise ?? 0.05);
  const minPeriod = positive('minPeriod', options.minPeriod ?? 8);
  const maxPeriod = positive('maxPeriod', options.maxPeriod ?? 24);
  const minAmp = nonNegative('minAmplitude', options.minAmplitude ?? 0.5);
  const maxAmp = nonNegative('maxAmplitude', options.maxAmplitude ?? 1);
  if (maxPeriod < minPeriod) throw new LstmConfigError('maxPeriod', `a number >= minPeriod (${minPeriod})`, maxPeriod);
  if (maxAmp < minAmp) throw new LstmConfigError('maxAmplitude', `a number >= minAmplitude (${minAmp})`, maxAmp);

  const rng = new Rng(seed);
  const x = new Float32Array(samples * seqLen);
  const y = new Float32Array(samples * seqLen);
  const s = new Float64Array(seqLen + 1);
  for (let n = 0; n < samples; n++) {
    const amp = rng.uniform(minAmp, maxAmp);
    const period = rng.uniform(minPeriod, maxPeriod);
    const phase = rng.uniform(0, 2 * Math.PI);
    for (let t = 0; t <= seqLen; t++) s[t] = amp * Math.sin((2 * Math.PI * t) / period + phase) + noise * rng.normal();
    for (let t = 0; t < seqLen; t++) {
      x[n * seqLen + t] = s[t];
      y[n * seqLen + t] = s[t + 1];
    }
  }
  return {
    x: { data: x, shape: [samples, seqLen, 1] },
    y: { data: y, shape: [samples, seqLen, 1] },
    head: 'manyToMany',
    trivialMse: varianceOf(y),
  };
}

export interface AddingProblemOptions {
  samples: number;
  /** At least 2. */
  seqLen: number;
  seed: number;
}

/**
 * The adding problem (Hochreiter & Schmidhuber 1997; Le et al. 2015 for ReLU RNNs): feature 0 holds
 * values uniform in [0, 1), feature 1 marks two steps with 1 (one in the first half of the sequence,
 * one in the second), and the target is the sum of the two marked values. x [samples, seqLen, 2],
 * y [samples, 1]; last-step head, loss mse. Predicting the mean (1) gives an mse of about 1/6.
 */
export function addingProblem(options: AddingProblemOptions): SyntheticDataset {
  const { samples, seqLen, seed } = options;
  checkCommon(samples, seqLen, seed);
  if (seqLen < 2) throw new LstmConfigError('seqLen', 'an integer >= 2 (two marked steps)', seqLen);
  const rng = new Rng(seed);
  const x = new Float32Array(samples * seqLen * 2);
  const y = new Float32Array(samples);
  const half = Math.floor(seqLen / 2);
  for (let n = 0; n < samples; n++) {
    for (let t = 0; t < seqLen; t++) x[(n * seqLen + t) * 2] = rng.next();
    const first = rng.int(half);
    const second = half + rng.int(seqLen - half);
    x[(n * seqLen + first) * 2 + 1] = 1;
    x[(n * seqLen + second) * 2 + 1] = 1;
    // Sum the stored float32 values so the target is exactly what the model sees.
    y[n] = x[(n * seqLen + first) * 2] + x[(n * seqLen + second) * 2];
  }
  return {
    x: { data: x, shape: [samples, seqLen, 2] },
    y: { data: y, shape: [samples, 1] },
    head: 'lastStep',
    trivialMse: varianceOf(y),
  };
}

/** Nested arrays of a shaped array (e.g. to send a dataset as JSON). */
export function toNestedArray(a: ShapedArray): unknown[] {
  const build = (offset: number, dim: number): unknown[] => {
    const n = a.shape[dim];
    if (dim === a.shape.length - 1) return Array.from(a.data.subarray(offset, offset + n));
    const stride = a.shape.slice(dim + 1).reduce((p, q) => p * q, 1);
    return Array.from({ length: n }, (_, i) => build(offset + i * stride, dim + 1));
  };
  return build(0, 0);
}

function varianceOf(v: Float32Array): number {
  let mean = 0;
  for (const e of v) mean += e;
  mean /= v.length;
  let ss = 0;
  for (const e of v) ss += (e - mean) * (e - mean);
  return ss / v.length;
}

function checkCommon(samples: unknown, seqLen: unknown, seed: unknown): void {
  if (typeof samples !== 'number' || !Number.isInteger(samples) || samples < 1)
    throw new LstmConfigError('samples', 'a positive integer', samples);
  if (typeof seqLen !== 'number' || !Number.isInteger(seqLen) || seqLen < 1)
    throw new LstmConfigError('seqLen', 'a positive integer', seqLen);
  if (typeof seed !== 'number' || !Number.isInteger(seed)) throw new LstmConfigError('seed', 'an integer', seed);
}

function positive(field: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0)
    throw new LstmConfigError(field, 'a finite number > 0', v);
  return v;
}

function nonNegative(field: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0)
    throw new LstmConfigError(field, 'a finite number >= 0', v);
  return v;
}
