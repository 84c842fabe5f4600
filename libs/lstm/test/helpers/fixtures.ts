import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { ReluLstmOptions } from '../../src/config';
import { ReluLstm } from '../../src/relu-lstm';

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

/** The errors of one fixture on the active backend, every read asynchronous (webgpu cannot read synchronously). */
export interface FixtureErrors {
  /** output, h_n, c_n: relative errors of the forward pass. */
  errors: Record<string, number>;
  /** x, h0, c0 and each parameter: relative errors of the gradients of the weighted-sum loss. */
  gradErrors: Record<string, number>;
  lossErr: number;
}

/**
 * Runs a fixture on the active backend (and kernel path): forward, the input gradients with tf.grads,
 * the parameter gradients with tf.variableGrads; disposes every tensor it made.
 */
export async function measureFixture(fx: Fixture): Promise<FixtureErrors> {
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
    output: await relErrOf(fwd.output, fx.expected.output),
    h_n: await relErrOf(fwd.hN, fx.expected.h_n),
    c_n: await relErrOf(fwd.cN, fx.expected.c_n),
  };
  const inputGrads = tf.grads(lossOf)([x, h0, c0]);
  const gradErrors: Record<string, number> = {
    x: await relErrOf(inputGrads[0], fx.grads.x),
    h0: await relErrOf(inputGrads[1], fx.grads.h0),
    c0: await relErrOf(inputGrads[2], fx.grads.c0),
  };
  const { value, grads } = tf.variableGrads(() => lossOf(x, h0, c0), [...lstm.parameters().values()]);
  const lossErr = Math.abs((await value.data())[0] - fx.loss) / Math.max(1, Math.abs(fx.loss));
  for (const [name, v] of lstm.parameters()) gradErrors[name] = await relErrOf(grads[v.name], fx.grads[name]);
  tf.dispose([x, h0, c0, R, Rh, Rc, fwd.output, fwd.hN, fwd.cN, ...inputGrads, value, ...Object.values(grads)]);
  lstm.dispose();
  return { errors, gradErrors, lossErr };
}
