import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { ReluLstmOptions } from '../../src/config';

/** One PyTorch float64 reference case (see fixtures/README.md for the fields). */
export interface Fixture {
  name: string;
  file: string;
  config: {
    batch: number;
    seq: number;
    input_size: number;
    hidden_size: number;
    num_layers: number;
    batch_first: boolean;
    bidirectional?: boolean;
    lengths?: number[] | null;
    activation?: string;
    recurrent_activation?: string;
  };
  state_dict: Record<string, number[] | number[][]>;
  /** Present in the top-level cases: the same weights in the Keras / tfjs-layers layout. */
  keras_weights?: Array<{ kernel: number[][]; recurrent_kernel: number[][]; bias: number[] }>;
  x: number[][][];
  h0: number[][][];
  c0: number[][][];
  expected: { output: number[][][]; h_n: number[][][]; c_n: number[][][] };
  loss_weights: { R: number[][][]; Rh: number[][][]; Rc: number[][][] };
  loss: number;
  grads: Record<string, unknown>;
}

const DIR = path.join(__dirname, '..', 'fixtures');

/** One case by its path under fixtures/ (e.g. 'basic.json' or 'more/bidir_lengths.json'). */
export function loadFixture(file: string): Fixture {
  return { ...JSON.parse(fs.readFileSync(path.join(DIR, file), 'utf8')), file };
}

export function loadFixtures(): Fixture[] {
  const files = [
    ...fs
      .readdirSync(DIR)
      .filter((f) => f.endsWith('.json') && f !== 'index.json')
      .map((f) => path.join(DIR, f)),
    ...fs
      .readdirSync(path.join(DIR, 'more'))
      .filter((f) => f.endsWith('.json') && f !== 'index_ext.json')
      .map((f) => path.join(DIR, 'more', f)),
  ];
  return files.map((f) => ({ ...JSON.parse(fs.readFileSync(f, 'utf8')), file: path.relative(DIR, f) }));
}

export function fixtureOptions(fx: Fixture): ReluLstmOptions {
  const c = fx.config;
  return {
    inputSize: c.input_size,
    hiddenSize: c.hidden_size,
    numLayers: c.num_layers,
    batchFirst: c.batch_first,
    bidirectional: c.bidirectional ?? false,
    activation: (c.activation ?? 'relu') as ReluLstmOptions['activation'],
    recurrentActivation: c.recurrent_activation === 'hard_sigmoid' ? 'hardSigmoid' : 'sigmoid',
  };
}

/** max |a - ref| / max |ref|: the relative error measure the issue asks for. */
export function relErr(actual: tf.Tensor, ref: unknown): number {
  return relErrData(actual.dataSync(), ref);
}

/** `relErr` with an asynchronous read, for backends that cannot read synchronously (webgpu). */
export async function relErrOf(actual: tf.Tensor, ref: unknown): Promise<number> {
  return relErrData(await actual.data(), ref);
}

function relErrData(a: ArrayLike<number>, ref: unknown): number {
  const r = (ref as number[]).flat(Infinity as 1) as number[];
  if (a.length !== r.length) throw new Error(`size mismatch: ${a.length} vs ${r.length}`);
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < r.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(a[i] - r[i]));
    maxRef = Math.max(maxRef, Math.abs(r[i]));
  }
  return maxRef === 0 ? maxDiff : maxDiff / maxRef;
}
