/**
 * A `SequenceModel` as a tf.layers (Keras-layout) model: `tf.layers.lstm` layers (in
 * `tf.layers.bidirectional` wrappers, 'concat', when bidirectional) and a dense head, carrying the
 * weights through `toKerasWeights`. Saved, it is the TF.js `model.json` + `weights.bin` pair that
 * `tf.loadLayersModel` reads, and its weight list is what Keras's `model.set_weights` takes.
 *
 * What carries over: every activation tf.layers has (relu, tanh, relu6, linear; gates sigmoid or
 * hardSigmoid), any depth, both directions, both heads. What does not: `clippedRelu` (a ReLU capped
 * at `cellClip`: no tf.layers or Keras activation takes a cap), per-sequence `lengths` (the model
 * reads every step) and a start state (it starts from zeros). Dropout acts in training only.
 */
import * as tfl from '@tensorflow/tfjs';
import type * as tf from '@tensorflow/tfjs-core';
import type { Activation, SequenceModelConfig } from './config';
import { toKerasWeights } from './keras-weights';
import { HEAD_BIAS, HEAD_WEIGHT } from './sequence-model';

/** tf.layers' name of each activation it has; null: none. */
const LAYERS_ACTIVATIONS: Record<Activation, string | null> = {
  relu: 'relu',
  tanh: 'tanh',
  relu6: 'relu6',
  linear: 'linear',
  clippedRelu: null,
};

/** Why the model has no tf.layers form (null: it has one). */
export function layersExportProblem(cfg: SequenceModelConfig): string | null {
  const a = cfg.lstm.activation;
  if (LAYERS_ACTIVATIONS[a] === null) {
    return `activation '${a}' (a ReLU capped at cellClip ${cfg.lstm.cellClip}) has no tf.layers or Keras activation: no LSTM layer there caps its cell, so the exported model would compute something else`;
  }
  return null;
}

export class LayersExportError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LayersExportError';
  }
}

/** The tf.layers model of `cfg` with the weights of `stateDict` (PyTorch names plus head); the caller disposes it. */
export function toLayersModel(cfg: SequenceModelConfig, stateDict: Record<string, tf.Tensor>): tfl.LayersModel {
  const problem = layersExportProblem(cfg);
  if (problem) throw new LayersExportError(problem);
  const { lstm, head, outputSize } = cfg;
  const model = tfl.sequential();
  for (let layer = 0; layer < lstm.numLayers; layer++) {
    const config = {
      units: lstm.hiddenSize,
      activation: LAYERS_ACTIVATIONS[lstm.activation] as 'relu',
      recurrentActivation: lstm.recurrentActivation as 'sigmoid',
      useBias: lstm.bias,
      // The last layer of a lastStep model gives its final h (each direction's), as `hN` does.
      returnSequences: layer < lstm.numLayers - 1 || head === 'manyToMany',
    };
    const inputShape = layer === 0 ? { inputShape: [null, lstm.inputSize] } : {};
    model.add(
      lstm.bidirectional
        ? tfl.layers.bidirectional({ layer: tfl.layers.lstm(config), mergeMode: 'concat', ...inputShape })
        : tfl.layers.lstm({ ...config, ...inputShape }),
    );
  }
  model.add(tfl.layers.dense({ units: outputSize, useBias: true, name: 'head' }));
  const { [HEAD_WEIGHT]: _w, [HEAD_BIAS]: _b, ...lstmDict } = stateDict;
  const weights = [
    ...toKerasWeights(lstmDict, lstm),
    tfl.transpose(stateDict[HEAD_WEIGHT]),
    tfl.clone(stateDict[HEAD_BIAS]),
  ];
  try {
    model.setWeights(weights);
  } catch (e) {
    model.dispose();
    throw e;
  } finally {
    tfl.dispose(weights);
  }
  return model;
}

/** What `saveLayersModel` writes: `model.json` and the weights file it names. */
export interface SavedLayersModel {
  modelJson: string;
  weights: Uint8Array;
  /** The weights' names in `model.getWeights()` order (also Keras's `get_weights()` order). */
  weightNames: string[];
}

export const LAYERS_WEIGHTS_FILE = 'weights.bin';

/** The TF.js `model.json` (its manifest naming `LAYERS_WEIGHTS_FILE` beside it) and the weight bytes. */
export async function saveLayersModel(model: tfl.LayersModel): Promise<SavedLayersModel> {
  let saved: tfl.io.ModelArtifacts | null = null;
  await model.save(
    tfl.io.withSaveHandler((artifacts) => {
      saved = artifacts;
      return Promise.resolve({ modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } });
    }),
  );
  const a = saved as unknown as tfl.io.ModelArtifacts;
  const specs = a.weightSpecs ?? [];
  const data = a.weightData;
  const buffer = Array.isArray(data) ? tfl.io.concatenateArrayBuffers(data) : (data as ArrayBuffer);
  const modelJson = JSON.stringify({
    format: a.format ?? 'layers-model',
    generatedBy: a.generatedBy,
    convertedBy: '@relu-lstm/lstm layers-export',
    modelTopology: a.modelTopology,
    weightsManifest: [{ paths: [LAYERS_WEIGHTS_FILE], weights: specs }],
  });
  return { modelJson, weights: new Uint8Array(buffer), weightNames: specs.map((s) => s.name) };
}
