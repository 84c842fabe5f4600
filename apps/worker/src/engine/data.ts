/**
 * The training data of a train payload, in the form `fit` takes (batch-first `FitData`): inline
 * arrays as they are, an uploaded dataset read from the dataset store, or a synthetic generator of
 * the library seeded from the payload.
 */
import { addingProblem, sineForecast, type FitData } from '@relu-lstm/lstm';
import type { DatasetStore, TrainPayload } from '@relu-lstm/jobs';
import { PayloadError } from './errors';

export interface LoadedData {
  data: FitData;
  /** Number of samples N. */
  samples: number;
  seqLen: number;
  /** One line saying where the data came from (for config.json and state.json). */
  description: string;
}

export async function loadTrainingData(payload: TrainPayload, datasets: DatasetStore): Promise<LoadedData> {
  const d = payload.data;
  if (d.synthetic) {
    const s = d.synthetic;
    const seed = s.seed ?? payload.training.seed;
    const set =
      s.kind === 'sine'
        ? sineForecast({ samples: s.samples, seqLen: s.seqLen, seed })
        : addingProblem({ samples: s.samples, seqLen: s.seqLen, seed });
    return {
      data: { x: set.x, y: set.y },
      samples: s.samples,
      seqLen: s.seqLen,
      description: `synthetic '${s.kind}' data: ${s.samples} samples of ${s.seqLen} steps, seed ${seed}`,
    };
  }
  if (d.inline) {
    const x = d.inline.x;
    return {
      data: { x, y: d.inline.y as FitData['y'], ...(d.inline.lengths ? { lengths: d.inline.lengths } : {}) },
      samples: x.length,
      seqLen: x[0]?.length ?? 0,
      description: `inline data: ${x.length} samples of ${x[0]?.length ?? 0} steps`,
    };
  }
  const id = d.datasetId!;
  let set: Awaited<ReturnType<DatasetStore['get']>>;
  try {
    set = await datasets.get(id);
  } catch (e) {
    // A stored file that is not JSON is bad data, not a passing fault: retrying cannot fix it.
    if (e instanceof SyntaxError)
      throw new PayloadError(`data.datasetId: dataset ${id} is not readable JSON (${e.message})`, 'data.datasetId');
    throw e;
  }
  return {
    data: { x: set.x, y: set.y as FitData['y'], ...(set.lengths ? { lengths: set.lengths } : {}) },
    samples: set.x.length,
    seqLen: set.x[0]?.length ?? 0,
    description: `dataset ${id}: ${set.x.length} samples of ${set.x[0]?.length ?? 0} steps`,
  };
}

/**
 * The first `count` samples of x (batch-first) as nested arrays `[count, T, I]`: the default input
 * whose final state `state.json` records.
 */
export function firstSamples(x: FitData['x'], count: number): number[][][] {
  if (Array.isArray(x)) return (x as number[][][]).slice(0, count);
  const { data, shape } = x as { data: ArrayLike<number>; shape: number[] };
  const [, T, I] = shape;
  const out: number[][][] = [];
  for (let n = 0; n < Math.min(count, shape[0]); n++) {
    const seq: number[][] = [];
    for (let t = 0; t < T; t++) {
      const row: number[] = [];
      for (let i = 0; i < I; i++) row.push(data[(n * T + t) * I + i]);
      seq.push(row);
    }
    out.push(seq);
  }
  return out;
}
