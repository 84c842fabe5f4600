import { LstmInputError, ReluLstmError } from './errors';
import { LossName, SequenceModelConfig, resolveSequenceModelConfig } from './config';
import { checkLossName } from './losses';
import { OptimizerSlots, ResolvedOptimizerConfig, resolveOptimizerConfig } from './optimizers';
import { RngState } from './rng';
import { decodeSafetensors, encodeSafetensors, RawTensor } from './safetensors';
import { SequenceModel } from './sequence-model';

/**
 * Everything `fit` needs to continue a run exactly where it stopped: model config and weights, the
 * optimizer's config and slots, the position in the run, both generators and the history. Plain data
 * (no tensors), so it outlives every model and optimizer, and converts losslessly to a JSON-safe
 * object (`trainingStateToJSON`) and to bytes (`encodeTrainingState`, a safetensors file whose tensors
 * are the weights and optimizer slots, loadable in Python, and whose metadata holds the rest).
 *
 * Where a state can be taken: at the end of an epoch (`progress.stepInEpoch` 0, `permutation` null)
 * or between two batches of an epoch (`fit` does this only when aborted with `checkpointOnAbort`); then
 * `permutation` is that epoch's sample order and `stepInEpoch` the number of its batches done.
 */
export interface TrainingState {
  format: typeof FORMAT;
  version: typeof VERSION;
  model: SequenceModelConfig;
  /** Parameter values by name (`SequenceModel.parameters()` names), row-major float32. */
  weights: Record<string, StoredTensor>;
  optimizer: { config: ResolvedOptimizerConfig } & OptimizerSlots;
  /** The fit settings that must not change on resume (`fit` checks them). */
  settings: FitSettings;
  progress: FitPosition;
  rng: { shuffle: RngState; dropout: RngState };
  history: EpochRecord[];
}

export interface StoredTensor {
  shape: number[];
  data: Float32Array;
}

export interface FitSettings {
  loss: LossName;
  batchSize: number;
  clipNorm: number | null;
  validationSplit: number;
  shuffle: boolean;
  seed: number;
  /** Number of samples of the data set (training + validation). */
  numSamples: number;
}

export interface FitPosition {
  /** The epoch to continue with (0-based): in progress when `stepInEpoch` > 0, else the next to start. */
  epoch: number;
  /** Batches of `epoch` already done. */
  stepInEpoch: number;
  /** Optimizer steps done since the start of the run. */
  globalStep: number;
  /** Order of the training samples in `epoch`, when it is in progress. */
  permutation: number[] | null;
  /**
   * Running sums over the batches of `epoch` done so far: loss x positions, positions (sequences, or
   * valid steps for a many-to-many head), gradient norms, and wall seconds.
   */
  epochLossSum: number;
  epochPositions: number;
  epochGradNormSum: number;
  epochSeconds: number;
}

/** One line of the training history. */
export interface EpochRecord {
  epoch: number;
  /**
   * Mean training loss over the epoch (each batch's loss, measured in training mode before its update,
   * weighted by its positions).
   */
  loss: number;
  /** Loss on the validation split after the epoch, in inference mode; null without validation. */
  valLoss: number | null;
  /** Mean global gradient norm (before clipping) over the epoch's steps. */
  gradNorm: number;
  steps: number;
  /** Wall time of the epoch including validation (an epoch split by a resume counts both parts). */
  seconds: number;
}

export const FORMAT = 'relu-lstm/training-state';
export const VERSION = 1;

/** A new model with the state's config and weights (and dropout generator). The caller disposes it. */
export function restoreModel(state: TrainingState): SequenceModel {
  const model = new SequenceModel(state.model);
  try {
    model.loadStateDict(state.weights);
    model.setDropoutRngState(state.rng.dropout);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}

/** Reads the model's weights into plain arrays (for building a TrainingState). */
export async function readWeights(model: SequenceModel): Promise<Record<string, StoredTensor>> {
  const out: Record<string, StoredTensor> = {};
  for (const [name, v] of model.parameters())
    out[name] = { shape: v.shape.slice(), data: Float32Array.from(await v.data()) };
  return out;
}

// ---------------------------------------------------------------------------------------------
// JSON

/** The JSON-safe form: float32 data as base64 of its little-endian bytes. */
export interface TrainingStateJSON extends Omit<TrainingState, 'weights' | 'optimizer'> {
  weights: Record<string, StoredTensorJSON>;
  optimizer: {
    config: ResolvedOptimizerConfig;
    iterations: number;
    slots: Array<{ name: string } & StoredTensorJSON>;
    adamAccBeta?: [number, number];
  };
}

export interface StoredTensorJSON {
  shape: number[];
  dtype: 'float32';
  base64: string;
}

export function trainingStateToJSON(state: TrainingState): TrainingStateJSON {
  const enc = (t: StoredTensor): StoredTensorJSON => ({
    shape: t.shape.slice(),
    dtype: 'float32',
    base64: toBase64(t.data),
  });
  const weights: Record<string, StoredTensorJSON> = {};
  for (const [name, t] of Object.entries(state.weights)) weights[name] = enc(t);
  return {
    ...copyPlain(state),
    weights,
    optimizer: {
      config: { ...state.optimizer.config },
      iterations: state.optimizer.iterations,
      slots: state.optimizer.slots.map((s) => ({ name: s.name, ...enc(s) })),
      ...(state.optimizer.adamAccBeta ? { adamAccBeta: [...state.optimizer.adamAccBeta] as [number, number] } : {}),
    },
  };
}

/** Parses and validates the JSON form; throws `LstmInputError` naming the first bad field. */
export function trainingStateFromJSON(json: TrainingStateJSON): TrainingState {
  const obj = expectObject('trainingState', json);
  const dec = (field: string, t: unknown): StoredTensor => {
    const o = expectObject(field, t) as Partial<StoredTensorJSON>;
    if (o.dtype !== 'float32') throw new LstmInputError(`${field}.dtype`, '"float32"', o.dtype);
    if (typeof o.base64 !== 'string') throw new LstmInputError(`${field}.base64`, 'a base64 string', o.base64);
    return storedTensor(field, o.shape, fromBase64(`${field}.base64`, o.base64));
  };
  const weights: Record<string, StoredTensor> = {};
  for (const [name, t] of Object.entries(expectObject('trainingState.weights', obj.weights)))
    weights[name] = dec(`trainingState.weights.${name}`, t);
  const opt = expectObject('trainingState.optimizer', obj.optimizer) as Partial<TrainingStateJSON['optimizer']>;
  if (!Array.isArray(opt.slots)) throw new LstmInputError('trainingState.optimizer.slots', 'an array', opt.slots);
  const slots = opt.slots.map((s, i) => {
    const field = `trainingState.optimizer.slots[${i}]`;
    if (typeof s?.name !== 'string') throw new LstmInputError(`${field}.name`, 'a string', s?.name);
    return { name: s.name, ...dec(field, s) };
  });
  return validated({
    ...(obj as unknown as TrainingState),
    weights,
    optimizer: { ...(opt as unknown as TrainingState['optimizer']), slots },
  });
}

// ---------------------------------------------------------------------------------------------
// Bytes

const META_KEY = 'relu_lstm.training_state';
const WEIGHT_PREFIX = 'weights/';
const SLOT_PREFIX = 'optimizer/';

/**
 * A safetensors file: every weight as `weights/<name>` and every optimizer slot as
 * `optimizer/<name>` (F32), and the rest of the state as JSON in the metadata entry
 * `relu_lstm.training_state` (slots listed there in order, by name).
 */
export function encodeTrainingState(state: TrainingState): Uint8Array {
  validated(state);
  const tensors: Record<string, RawTensor> = {};
  for (const [name, t] of Object.entries(state.weights))
    tensors[WEIGHT_PREFIX + name] = { dtype: 'F32', shape: t.shape, data: t.data };
  for (const s of state.optimizer.slots) tensors[SLOT_PREFIX + s.name] = { dtype: 'F32', shape: s.shape, data: s.data };
  const { weights: _w, optimizer, ...rest } = state;
  const meta = {
    ...copyPlain(rest),
    weights: Object.keys(state.weights),
    optimizer: {
      config: optimizer.config,
      iterations: optimizer.iterations,
      slots: optimizer.slots.map((s) => s.name),
      ...(optimizer.adamAccBeta ? { adamAccBeta: optimizer.adamAccBeta } : {}),
    },
  };
  return encodeSafetensors(tensors, { [META_KEY]: JSON.stringify(meta) });
}

/** Reads `encodeTrainingState`'s bytes; throws `SafetensorsError` or `LstmInputError` when malformed. */
export function decodeTrainingState(bytes: Uint8Array): TrainingState {
  const { tensors, metadata } = decodeSafetensors(bytes);
  const text = metadata[META_KEY];
  if (text === undefined)
    throw new LstmInputError('trainingState', `a safetensors file with metadata "${META_KEY}"`, Object.keys(metadata));
  let meta: Record<string, unknown>;
  try {
    meta = expectObject('trainingState', JSON.parse(text));
  } catch (e) {
    if (e instanceof ReluLstmError) throw e;
    throw new LstmInputError(`metadata ${META_KEY}`, 'JSON', (e as Error).message);
  }
  const take = (key: string): StoredTensor => {
    const t = tensors[key];
    if (t === undefined) throw new LstmInputError(key, 'a tensor in the file', 'none');
    if (t.dtype !== 'F32') throw new LstmInputError(`${key}.dtype`, 'F32', t.dtype);
    return { shape: t.shape.slice(), data: t.data };
  };
  const names = meta.weights;
  if (!Array.isArray(names)) throw new LstmInputError('trainingState.weights', 'a list of parameter names', names);
  const weights: Record<string, StoredTensor> = {};
  for (const n of names as string[]) weights[n] = take(WEIGHT_PREFIX + n);
  const opt = expectObject('trainingState.optimizer', meta.optimizer);
  if (!Array.isArray(opt.slots))
    throw new LstmInputError('trainingState.optimizer.slots', 'a list of slot names', opt.slots);
  const slots = (opt.slots as string[]).map((n) => ({ name: n, ...take(SLOT_PREFIX + n) }));
  const expected = new Set([...names.map((n) => WEIGHT_PREFIX + n), ...slots.map((s) => SLOT_PREFIX + s.name)]);
  for (const key of Object.keys(tensors))
    if (!expected.has(key)) throw new LstmInputError(key, 'only the tensors the metadata lists', 'an extra tensor');
  return validated({
    ...(meta as unknown as TrainingState),
    weights,
    optimizer: { ...(opt as unknown as TrainingState['optimizer']), slots },
  });
}

// ---------------------------------------------------------------------------------------------
// Validation

/** Checks a state's structure (not its weights' fit to the model: `loadStateDict` does that). */
export function validated(state: TrainingState): TrainingState {
  const s = expectObject('trainingState', state) as unknown as TrainingState;
  if (s.format !== FORMAT) throw new LstmInputError('trainingState.format', JSON.stringify(FORMAT), s.format);
  if (s.version !== VERSION) throw new LstmInputError('trainingState.version', String(VERSION), s.version);
  try {
    resolveSequenceModelConfig(s.model);
    resolveOptimizerConfig(s.optimizer?.config, 'trainingState.optimizer.config');
    checkLossName(s.settings?.loss, 'trainingState.settings.loss');
  } catch (e) {
    if (e instanceof ReluLstmError && 'field' in e) {
      const err = e as ReluLstmError & { field: string; expected: string; actual: unknown };
      throw new LstmInputError(
        err.field.startsWith('trainingState') ? err.field : `trainingState.model.${err.field}`,
        err.expected,
        err.actual,
      );
    }
    throw e;
  }
  for (const [name, t] of Object.entries(expectObject('trainingState.weights', s.weights))) {
    const o = expectObject(`trainingState.weights.${name}`, t);
    storedTensor(`trainingState.weights.${name}`, o.shape, o.data);
  }
  const nat = (field: string, v: unknown) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new LstmInputError(field, 'an integer >= 0', v);
  };
  nat('trainingState.optimizer.iterations', s.optimizer.iterations);
  const acc = s.optimizer.adamAccBeta;
  if (
    acc !== undefined &&
    !(Array.isArray(acc) && acc.length === 2 && acc.every((v) => typeof v === 'number' && v > 0 && v <= 1))
  ) {
    throw new LstmInputError('trainingState.optimizer.adamAccBeta', 'absent or two numbers in (0, 1]', acc);
  }
  if (!Array.isArray(s.optimizer.slots))
    throw new LstmInputError('trainingState.optimizer.slots', 'an array', s.optimizer.slots);
  s.optimizer.slots.forEach((t, i) => storedTensor(`trainingState.optimizer.slots[${i}]`, t.shape, t.data));
  const st = expectObject('trainingState.settings', s.settings) as unknown as FitSettings;
  nat('trainingState.settings.batchSize', st.batchSize);
  nat('trainingState.settings.numSamples', st.numSamples);
  const p = expectObject('trainingState.progress', s.progress) as unknown as FitPosition;
  for (const k of ['epoch', 'stepInEpoch', 'globalStep', 'epochPositions'] as const)
    nat(`trainingState.progress.${k}`, p[k]);
  if (
    p.permutation !== null &&
    !(Array.isArray(p.permutation) && p.permutation.every((i) => Number.isInteger(i) && i >= 0))
  ) {
    throw new LstmInputError('trainingState.progress.permutation', 'null or an array of sample indices', p.permutation);
  }
  const r = expectObject('trainingState.rng', s.rng) as unknown as TrainingState['rng'];
  for (const k of ['shuffle', 'dropout'] as const) {
    const v = r[k];
    if (!Array.isArray(v) || v.length !== 4 || !v.every((w) => Number.isInteger(w) && w >= -(2 ** 31) && w < 2 ** 32)) {
      throw new LstmInputError(`trainingState.rng.${k}`, 'four 32-bit integers', v);
    }
  }
  if (!Array.isArray(s.history)) throw new LstmInputError('trainingState.history', 'an array', s.history);
  return s;
}

function storedTensor(field: string, shape: unknown, data: unknown): StoredTensor {
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0))
    throw new LstmInputError(`${field}.shape`, 'an array of sizes', shape);
  if (!(data instanceof Float32Array)) throw new LstmInputError(`${field}.data`, 'a Float32Array', data);
  const size = (shape as number[]).reduce((a, b) => a * b, 1);
  if (data.length !== size)
    throw new LstmInputError(
      `${field}.data`,
      `${size} values for shape [${shape.join(', ')}]`,
      `${data.length} values`,
    );
  return { shape: shape as number[], data };
}

function expectObject(field: string, v: unknown): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new LstmInputError(field, 'an object', v);
  return v as Record<string, unknown>;
}

/** A deep copy of the plain (non-tensor) parts. */
function copyPlain<T extends object>(state: T): Omit<T, 'weights' | 'optimizer'> {
  const { weights: _w, optimizer: _o, ...rest } = state as T & { weights?: unknown; optimizer?: unknown };
  return JSON.parse(JSON.stringify(rest)) as Omit<T, 'weights' | 'optimizer'>;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function toBase64(data: Float32Array): string {
  const bytes = new Uint8Array(data.length * 4);
  if (LITTLE_ENDIAN) bytes.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  else {
    const view = new DataView(bytes.buffer);
    data.forEach((v, i) => view.setFloat32(i * 4, v, true));
  }
  return encodeBase64(bytes);
}

function fromBase64(field: string, s: string): Float32Array {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 !== 0)
    throw new LstmInputError(field, 'base64 text', `${s.slice(0, 20)}...`);
  const buf = decodeBase64(s).buffer;
  if (buf.byteLength % 4 !== 0)
    throw new LstmInputError(field, 'a whole number of float32 values', `${buf.byteLength} bytes`);
  const view = new DataView(buf);
  const out = new Float32Array(buf.byteLength / 4);
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true);
  return out;
}

// Buffer on Node, btoa/atob elsewhere (browsers, workers).
function encodeBase64(bytes: Uint8Array): string {
  if (typeof Buffer !== 'undefined')
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(bin);
}

function decodeBase64(s: string): Uint8Array {
  if (typeof Buffer !== 'undefined') return new Uint8Array(Buffer.from(s, 'base64'));
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
