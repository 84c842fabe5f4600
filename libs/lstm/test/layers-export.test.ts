/**
 * Export to a tf.layers model, saved as TF.js `model.json` + `weights.bin`, served over HTTP and
 * read back with `tf.loadLayersModel` (what a browser or Node user does).
 *
 * Oracles: the PyTorch fixtures (ReLU-LSTMs from a zero state) with a linear head applied here in
 * plain float64 to their outputs / final states; and, for tanh, relu6, hard-sigmoid gates and
 * bidirectional models on random weights, the library's own `SequenceModel` (itself checked against
 * the fixtures in reference.test.ts). `clippedRelu` is refused with the reason.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { resolveSequenceModelConfig, type SequenceModelConfig, type SequenceModelOptions } from '../src/config';
import { LAYERS_WEIGHTS_FILE, LayersExportError, saveLayersModel, toLayersModel } from '../src/layers-export';
import { SequenceModel } from '../src/sequence-model';
import { loadFixture, type Fixture } from './helpers/fixtures';
import { useCpuBackendWithLeakCheck } from './helpers/leak-check';

useCpuBackendWithLeakCheck();

let dir: string;
let server: Server;
let base: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'layers-export-'));
  server = createServer((req, res) => {
    readFile(join(dir, (req.url ?? '/').slice(1))).then(
      (b) => res.end(b),
      () => res.writeHead(404).end(),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
  await rm(dir, { recursive: true, force: true });
});

/** Exports, writes `<name>/model.json` + weights, and loads it back from its URL. */
async function roundTrip(
  name: string,
  cfg: SequenceModelConfig,
  sd: Record<string, tf.Tensor>,
): Promise<tf.LayersModel> {
  const model = toLayersModel(cfg, sd);
  let saved;
  try {
    saved = await saveLayersModel(model);
  } finally {
    model.dispose();
  }
  await mkdir(join(dir, name), { recursive: true });
  await writeFile(join(dir, name, 'model.json'), saved.modelJson);
  await writeFile(join(dir, name, LAYERS_WEIGHTS_FILE), saved.weights);
  return tf.loadLayersModel(tf.io.http(`${base}/${name}/model.json`, { fetchFunc: sameRealmFetch }));
}

/**
 * `fetch` whose JSON is parsed in the test's realm: jest runs tfjs in a vm context where arrays
 * parsed by Node's own `Response.json()` fail tf.layers' `instanceof Array` (outside jest the plain
 * URL form `tf.loadLayersModel(url)` reads the same files).
 */
async function sameRealmFetch(url: string | URL | Request, init?: RequestInit): Promise<Response> {
  const r = await fetch(url, init);
  const bytes = await r.arrayBuffer();
  return {
    ok: r.ok,
    status: r.status,
    headers: r.headers,
    json: () => Promise.resolve(JSON.parse(Buffer.from(bytes).toString('utf8'))),
    arrayBuffer: () => Promise.resolve(bytes),
  } as unknown as Response;
}

async function predict(model: tf.LayersModel, x: number[][][]): Promise<number[][] | number[][][]> {
  const input = tf.tensor3d(x);
  const y = model.predict(input) as tf.Tensor;
  try {
    return (await y.array()) as number[][] | number[][][];
  } finally {
    tf.dispose([input, y]);
  }
}

function maxDiff(a: unknown, b: unknown): number {
  if (Array.isArray(a) && Array.isArray(b)) {
    expect(a.length).toBe(b.length);
    return Math.max(0, ...a.map((v, i) => maxDiff(v, b[i])));
  }
  return Math.abs((a as number) - (b as number));
}

/** A deterministic head `[O, F]`, `[O]`. */
function headOf(o: number, f: number): { w: number[][]; b: number[] } {
  const w = Array.from({ length: o }, (_, i) => Array.from({ length: f }, (_, j) => Math.sin(1 + i * f + j) / 2));
  return { w, b: Array.from({ length: o }, (_, i) => 0.1 * (i + 1)) };
}
const linear = (v: number[], h: { w: number[][]; b: number[] }) =>
  h.w.map((row, i) => h.b[i] + row.reduce((s, x, j) => s + x * v[j], 0));

function stateDictOf(f: Fixture, h: { w: number[][]; b: number[] }): Record<string, tf.Tensor> {
  const sd: Record<string, tf.Tensor> = {};
  for (const [k, v] of Object.entries(f.state_dict)) sd[k] = tf.tensor(v);
  sd['head.weight'] = tf.tensor2d(h.w);
  sd['head.bias'] = tf.tensor1d(h.b);
  return sd;
}

function configOf(f: Fixture, head: 'manyToMany' | 'lastStep', outputSize: number): SequenceModelConfig {
  return resolveSequenceModelConfig({
    lstm: {
      inputSize: f.config.input_size,
      hiddenSize: f.config.hidden_size,
      numLayers: f.config.num_layers,
      batchFirst: true,
    },
    outputSize,
    head,
  });
}

describe.each(['basic.json', 'two_layer.json'])('ReLU-LSTM %s against PyTorch', (file) => {
  const f = loadFixture(file);
  const H = f.config.hidden_size;
  const h = headOf(2, H);

  test('manyToMany: every step through the head', async () => {
    const sd = stateDictOf(f, h);
    const loaded = await roundTrip(`m-${file}`, configOf(f, 'manyToMany', 2), sd);
    try {
      const y = await predict(loaded, f.x);
      const want = f.expected.output.map((seq) => seq.map((step) => linear(step, h)));
      expect(maxDiff(y, want)).toBeLessThan(1e-4);
    } finally {
      loaded.dispose();
      tf.dispose(Object.values(sd));
    }
  });

  test("lastStep: the last layer's final h through the head", async () => {
    const sd = stateDictOf(f, h);
    const loaded = await roundTrip(`l-${file}`, configOf(f, 'lastStep', 2), sd);
    try {
      const y = await predict(loaded, f.x);
      const last = f.expected.h_n[f.config.num_layers - 1];
      expect(
        maxDiff(
          y,
          last.map((hb) => linear(hb, h)),
        ),
      ).toBeLessThan(1e-4);
    } finally {
      loaded.dispose();
      tf.dispose(Object.values(sd));
    }
  });
});

describe('other activations and both directions, against SequenceModel', () => {
  const x = Array.from({ length: 3 }, (_, b) =>
    Array.from({ length: 7 }, (_, t) => Array.from({ length: 3 }, (_, i) => Math.cos(b + 2 * t + 3 * i))),
  );
  const cases: Array<[string, SequenceModelOptions]> = [
    ['tanh', { lstm: { inputSize: 3, hiddenSize: 5, activation: 'tanh', seed: 1 }, outputSize: 2 }],
    [
      'relu6, hard-sigmoid gates, two layers, lastStep',
      {
        lstm: {
          inputSize: 3,
          hiddenSize: 4,
          numLayers: 2,
          activation: 'relu6',
          recurrentActivation: 'hardSigmoid',
          seed: 2,
        },
        outputSize: 1,
        head: 'lastStep',
      },
    ],
    [
      'bidirectional relu, two layers',
      { lstm: { inputSize: 3, hiddenSize: 4, numLayers: 2, bidirectional: true, seed: 3 }, outputSize: 2 },
    ],
    [
      'bidirectional tanh, lastStep, no bias',
      {
        lstm: { inputSize: 3, hiddenSize: 3, bidirectional: true, activation: 'tanh', bias: false, seed: 4 },
        outputSize: 2,
        head: 'lastStep',
      },
    ],
  ];
  test.each(cases)('%s', async (name, options) => {
    const ours = new SequenceModel({ ...options, lstm: { ...options.lstm, batchFirst: true } });
    const sd = ours.stateDict();
    let loaded: tf.LayersModel | null = null;
    try {
      loaded = await roundTrip(name.replace(/\W+/g, '-'), ours.config, sd);
      const input = tf.tensor3d(x);
      const r = ours.predict(input);
      const want = await r.y.array();
      tf.dispose([input, r.y, r.hN, r.cN]);
      expect(maxDiff(await predict(loaded, x), want)).toBeLessThan(1e-5);
    } finally {
      loaded?.dispose();
      tf.dispose(Object.values(sd));
      ours.dispose();
    }
  });
});

test('clippedRelu is refused, saying why', () => {
  const cfg = resolveSequenceModelConfig({
    lstm: { inputSize: 1, hiddenSize: 2, activation: 'clippedRelu', cellClip: 3 },
    outputSize: 1,
  });
  expect(() => toLayersModel(cfg, {})).toThrow(LayersExportError);
  expect(() => toLayersModel(cfg, {})).toThrow(/clippedRelu.*cellClip 3.*no tf.layers or Keras activation/);
});
