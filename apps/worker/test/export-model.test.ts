// The export script as users run it: the compiled apps/worker/dist/export-model.js on a
// model.safetensors as the worker writes it (library weights, the job's config as metadata), then
// a plain Node process that serves the output and reads it with `tf.loadLayersModel(url)`; its
// predictions must equal the library's. keras.safetensors holds the same weights in
// `model.getWeights()` order. A clippedRelu model is refused with the reason (exit 2).
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { SequenceModel, decodeSafetensors, stateDictToSafetensors, type SequenceModelOptions } from '@relu-lstm/lstm';
import { MODEL_METADATA_KEY, contract } from '@relu-lstm/jobs';

const SCRIPT = resolve(__dirname, '../dist/export-model.js');
const X = [
  [
    [0.1, -0.2],
    [0.3, 0.4],
    [-0.5, 0.6],
  ],
  [
    [1, 0],
    [0, 1],
    [0.5, 0.5],
  ],
];

let dir: string;
beforeAll(async () => {
  await tf.setBackend('cpu');
  dir = await mkdtemp(join(tmpdir(), 'export-model-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** A model.safetensors as the worker writes it. */
async function modelFile(name: string, model: SequenceModel, activation: string): Promise<string> {
  const spec = contract.ModelSpec.parse({
    inputSize: 2,
    hiddenSize: 4,
    outputSize: 2,
    activation,
    cellClip: activation === 'clippedRelu' ? 2 : undefined,
  });
  const dict = model.stateDict();
  const bytes = await stateDictToSafetensors(dict, {
    format: 'pt',
    [MODEL_METADATA_KEY]: JSON.stringify({ jobId: 'j', model: spec, sequenceModel: model.config }),
  });
  tf.dispose(Object.values(dict));
  const file = join(dir, `${name}.safetensors`);
  await writeFile(file, bytes);
  return file;
}

/** Serves `out` and loads model.json with the URL form of tf.loadLayersModel in a plain Node process. */
function predictInNode(out: string): number[][][] {
  const code = `
    const http = require('node:http'); const fs = require('node:fs'); const path = require('node:path');
    const tf = require('@tensorflow/tfjs');
    const server = http.createServer((q, r) => fs.readFile(path.join(${JSON.stringify(out)}, q.url), (e, b) => e ? r.writeHead(404).end() : r.end(b)));
    server.listen(0, '127.0.0.1', async () => {
      const m = await tf.loadLayersModel('http://127.0.0.1:' + server.address().port + '/model.json');
      const y = m.predict(tf.tensor3d(${JSON.stringify(X)}));
      process.stdout.write(JSON.stringify(await y.array()));
      server.close();
    });`;
  const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8', cwd: resolve(__dirname, '..') });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout) as number[][][];
}

test.each(['relu', 'tanh'])(
  'a %s model: model.json loads with tf.loadLayersModel and predicts as the library',
  async (activation) => {
    const options: SequenceModelOptions = {
      lstm: { inputSize: 2, hiddenSize: 4, batchFirst: true, activation: activation as 'relu', seed: 7 },
      outputSize: 2,
    };
    const model = new SequenceModel(options);
    try {
      const file = await modelFile(activation, model, activation);
      const out = join(dir, `out-${activation}`);
      const r = spawnSync(process.execPath, [SCRIPT, file, out], { encoding: 'utf8' });
      expect([r.status, r.stdout]).toEqual([0, expect.stringContaining('model.json')]);
      const x = tf.tensor3d(X);
      const p = model.predict(x);
      const want = (await p.y.array()) as number[][][];
      tf.dispose([x, p.y, p.hN, p.cN]);
      const got = predictInNode(out);
      const diff = Math.max(...got.flat(2).map((v, i) => Math.abs(v - want.flat(2)[i])));
      expect(diff).toBeLessThan(1e-5);

      const keras = decodeSafetensors(new Uint8Array(readFileSync(join(out, 'keras.safetensors'))));
      const keys = Object.keys(keras.tensors).sort();
      expect(keys.map((k) => k.slice(0, 4))).toEqual(['000.', '001.', '002.', '003.', '004.']);
      expect(keys.map((k) => keras.tensors[k].shape)).toEqual([[2, 16], [4, 16], [16], [4, 2], [2]]);
      expect(keras.metadata.format).toBe('keras');
    } finally {
      model.dispose();
    }
  },
);

test('a clippedRelu model is refused with the reason, exit 2, nothing written', async () => {
  const model = new SequenceModel({
    lstm: { inputSize: 2, hiddenSize: 4, batchFirst: true, activation: 'clippedRelu', cellClip: 2 },
    outputSize: 2,
  });
  try {
    const file = await modelFile('clipped', model, 'clippedRelu');
    const r = spawnSync(process.execPath, [SCRIPT, file, join(dir, 'out-clipped')], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/clippedRelu.*no tf.layers or Keras activation/);
    expect(existsSync(join(dir, 'out-clipped'))).toBe(false);
  } finally {
    model.dispose();
  }
});
