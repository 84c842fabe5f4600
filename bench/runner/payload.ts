/**
 * The job every benchmark path runs: a tiny inline-model inference (hidden 8, seq 5 by default), so
 * the runner's own cost (HTTP, validation, Redis, BullMQ, the worker's engine round trip) dominates
 * over the arithmetic.
 */
import type { InferPayloadInput } from '@relu-lstm/jobs';

export interface TinyModel {
  inputSize: number;
  hiddenSize: number;
  seqLen: number;
  batch: number;
}

export const TINY: TinyModel = { inputSize: 2, hiddenSize: 8, seqLen: 5, batch: 1 };

/** Deterministic small weights (no RNG needed: the values only have to be finite and varied). */
function matrix(rows: number, cols: number, salt: number): number[][] {
  return Array.from({ length: rows }, (_, r) =>
    Array.from({ length: cols }, (_, c) => Math.round(Math.sin(salt + r * 7.1 + c * 3.3) * 1000) / 4000),
  );
}

export function tinyInferPayload(m: TinyModel = TINY): InferPayloadInput {
  const g = 4 * m.hiddenSize;
  return {
    model: {
      config: { inputSize: m.inputSize, hiddenSize: m.hiddenSize, numLayers: 1, activation: 'relu', outputSize: 1 },
      stateDict: {
        weight_ih_l0: matrix(g, m.inputSize, 1),
        weight_hh_l0: matrix(g, m.hiddenSize, 2),
        bias_ih_l0: matrix(1, g, 3)[0],
        bias_hh_l0: matrix(1, g, 4)[0],
        'head.weight': matrix(1, m.hiddenSize, 5),
        'head.bias': [0.01],
      },
    },
    inputs: matrix(m.batch * m.seqLen, m.inputSize, 6).reduce<number[][][]>((acc, row, i) => {
      if (i % m.seqLen === 0) acc.push([]);
      acc[acc.length - 1].push(row);
      return acc;
    }, []),
    device: 'cpu',
  };
}
