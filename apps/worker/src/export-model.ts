/**
 * `node apps/worker/dist/export-model.js <model.safetensors> <out-dir>` (npm run export-model):
 * turns a runner model file (a registered version's or a train job's `model.safetensors`) into
 *   - `model.json` + `weights.bin`: a TF.js layers model, `tf.loadLayersModel('<url>/model.json')`;
 *   - `keras.safetensors`: the same weights in Keras's `model.get_weights()` order, keys
 *     `000.<name>`, `001.<name>`, ... so `model.set_weights([w[k] for k in sorted(w)])` loads them
 *     into the Keras model of the same layers (docs/api.md "Exporting a model").
 * A model tf.layers cannot express (`clippedRelu`) exits 2 saying why; the library's
 * `layersExportProblem` is the one place that decides.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  LAYERS_WEIGHTS_FILE,
  LayersExportError,
  encodeSafetensors,
  initBackend,
  safetensorsToStateDict,
  saveLayersModel,
  toLayersModel,
  type RawTensor,
} from '@relu-lstm/lstm';
import { MODEL_METADATA_KEY, ModelArtifactConfigSchema } from '@relu-lstm/jobs';
import * as tf from '@tensorflow/tfjs-core';

export const KERAS_WEIGHTS_FILE = 'keras.safetensors';

/** Writes the three files of the module comment into `outDir`; returns their names. */
export async function exportModel(modelFile: string, outDir: string): Promise<string[]> {
  const { stateDict, metadata } = safetensorsToStateDict(new Uint8Array(await readFile(modelFile)));
  try {
    const raw = metadata[MODEL_METADATA_KEY];
    const parsed = raw === undefined ? null : ModelArtifactConfigSchema.safeParse(JSON.parse(raw));
    if (!parsed?.success)
      throw new Error(`${modelFile}: no runner model config in its "${MODEL_METADATA_KEY}" metadata`);
    const model = toLayersModel(parsed.data.sequenceModel, stateDict);
    try {
      const saved = await saveLayersModel(model);
      const weights = model.getWeights();
      const entries: Record<string, RawTensor> = {};
      for (const [i, w] of weights.entries()) {
        const key = `${String(i).padStart(3, '0')}.${saved.weightNames[i]}`;
        entries[key] = { dtype: 'F32', shape: w.shape, data: (await w.data()) as Float32Array };
      }
      await mkdir(outDir, { recursive: true });
      await writeFile(join(outDir, 'model.json'), saved.modelJson);
      await writeFile(join(outDir, LAYERS_WEIGHTS_FILE), saved.weights);
      await writeFile(
        join(outDir, KERAS_WEIGHTS_FILE),
        encodeSafetensors(entries, { format: 'keras', order: JSON.stringify(saved.weightNames) }),
      );
      return ['model.json', LAYERS_WEIGHTS_FILE, KERAS_WEIGHTS_FILE];
    } finally {
      model.dispose();
    }
  } finally {
    tf.dispose(Object.values(stateDict));
  }
}

async function main(argv: string[]): Promise<number> {
  const [modelFile, outDir] = argv;
  if (!modelFile || !outDir) {
    process.stderr.write('usage: export-model <model.safetensors> <out-dir>\n');
    return 64;
  }
  await initBackend('cpu');
  try {
    const files = await exportModel(modelFile, outDir);
    process.stdout.write(`wrote ${files.map((f) => join(outDir, f)).join(', ')}\n`);
    return 0;
  } catch (e) {
    if (e instanceof LayersExportError) {
      process.stderr.write(`cannot export as a TF.js / Keras model: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      process.stderr.write(`export-model: ${(e as Error).message}\n`);
      process.exit(1);
    },
  );
}
