/**
 * The messages between the worker process (parent) and its engine (a child process forked from
 * `engine/main.js`, the only process that loads TensorFlow.js). Sent over Node's IPC channel with
 * `serialization: 'advanced'` (structured clone), so `Uint8Array`s travel as bytes, not JSON.
 *
 *   parent                                   engine
 *     | -- init ------------------------------> |  initBackend once
 *     | <------------------------------ ready -- |  (or `fatal` and exit)
 *     | -- train | infer (runId) -------------> |  one run at a time
 *     | <-- started, progress*, checkpoint*, log* |
 *     | -- stop (runId, checkpoint?) ----------> |  abort at the next batch boundary
 *     | <-- trained | inferred | stopped | failed |  exactly one terminal message per run
 *
 * Division of labour: the engine computes and reads its inputs (datasets, `fromJob` / `from` models,
 * checkpoints, models of infer jobs) from the shared stores; the parent owns Redis, the job's lock
 * and every write (checkpoints and final artifacts arrive here as bytes), so that a write can be
 * fenced by the job's lock in one place. The engine exits when the IPC channel closes (the parent
 * died), so a SIGKILLed worker never leaves a trainer behind.
 */
import type {
  DivergenceRollback,
  InferPayload,
  JobErrorInput,
  JobType,
  ModelSource,
  ProgressEvent,
  TrainPayload,
} from '@relu-lstm/jobs';
import type { InferOutputs } from './result-spill';

/** What the engine runs on (the library's `BackendInfo`, minus the `skipped` list). */
export interface BackendSummary {
  backend: string;
  gpu: boolean;
  device: string;
}

export interface EngineInit {
  artifactDir: string;
  /** Where the engine's artifact reads resolve jobs' published sets (REDIS_URL, QUEUE_PREFIX). */
  redisUrl: string;
  queuePrefix: string;
  datasetDir: string;
  /** RELU_LSTM_BACKEND; undefined: 'auto'. */
  backend: string | undefined;
  modelCacheSize: number;
  /** MODEL_CACHE_MB: the weights of the cached models stay under this (0: no bound). */
  modelCacheMb: number;
  /** How often the engine reports its tensors (`memory`) for the worker's metrics; null: never. */
  memoryReportMs: number | null;
}

/** tfjs's own count of what the engine holds (`tf.memory()`), for the worker's metrics. */
export interface EngineMemory {
  numTensors: number;
  numBytes: number;
}

export interface TrainRequest {
  kind: 'train';
  runId: string;
  jobId: string;
  payload: TrainPayload;
  /** Where `fromJob` / `from` is stored; null: neither. */
  modelSource: ModelSource | null;
  /** Steps between metric points (payload's progressEvery, floored by the worker's PROGRESS_EVERY). */
  progressEvery: number;
  /** Name of the checkpoint artifact of this job to resume from; null: start fresh. */
  resumeFrom: string | null;
  /** Wall time of earlier attempts (from the checkpoint's metrics), so elapsedMs keeps counting. */
  elapsedBeforeMs: number;
  /** Divergence guard: rollbacks allowed within this run and the learning-rate factor of each. */
  divergence: { retries: number; lrFactor: number };
}

export interface InferRequest {
  kind: 'infer';
  runId: string;
  jobId: string;
  payload: InferPayload;
  /** Where `modelJobId` / a registered `model` is stored; null: the model is inline. */
  modelSource: ModelSource | null;
}

/** The engine request of each job type. */
export interface RunRequests {
  train: TrainRequest;
  infer: InferRequest;
}
export type RunRequest = RunRequests[JobType];

export type ToEngine =
  | { kind: 'init'; init: EngineInit }
  | RunRequest
  /** Stop the run at the next batch boundary; with `checkpoint`, first send the state reached. */
  | { kind: 'stop'; runId: string; checkpoint: boolean };

/** Where a training run starts from, as the engine found it. */
export interface TrainStart {
  /** Set when resumed: the epoch to continue with and the steps already done. */
  resumedFrom: { epoch: number; step: number; stepInEpoch: number } | null;
  epochs: number;
  stepsPerEpoch: number;
  trainSamples: number;
  validationSamples: number;
  /** Where the weights came from. */
  init: 'seed' | 'fromJob' | 'checkpoint';
}

/** The engine's summary of a finished training run (the parent adds backend and artifact names). */
export interface TrainSummary {
  epochs: number;
  steps: number;
  finalLoss: number | null;
  finalValLoss: number | null;
  /** Mean training throughput of this attempt. */
  samplesPerSec: number;
  /** Wall time of the job including earlier attempts. */
  elapsedMs: number;
  /** Time spent in fit during this attempt. */
  trainMs: number;
}

/** Files the engine produced for a completed training; the parent writes them. */
export interface TrainFiles {
  /** `model.safetensors`: LSTM weights under PyTorch's names plus head.weight/head.bias. */
  model: Uint8Array;
  /** `state.json` content (JSON text of a `StateArtifact`). */
  state: string;
  /** The library's resolved configuration (model, optimizer, fit settings), for `config.json`. */
  resolved: Record<string, unknown>;
}

export type FromEngine =
  /** `skipped`: why `auto` passed over earlier backends (the library's `BackendInfo.skipped`). */
  | { kind: 'ready'; backend: BackendSummary; pid: number; skipped: string[] }
  | { kind: 'fatal'; error: JobErrorInput }
  /** Sent every `memoryReportMs` when set, whatever runs (outside any run). */
  | ({ kind: 'memory' } & EngineMemory)
  | ({ kind: 'started'; runId: string } & TrainStart)
  | { kind: 'progress'; runId: string; point: ProgressEvent }
  /** A resumable state (the library's encoded TrainingState). `step` is the global step it was taken at. */
  | { kind: 'checkpoint'; runId: string; epoch: number; step: number; stepInEpoch: number; bytes: Uint8Array }
  /** The run diverged and went back to `rollback.to` with a smaller learning rate; metric points past `to.step` are void. */
  | { kind: 'rollback'; runId: string; rollback: DivergenceRollback }
  | {
      kind: 'log';
      runId: string;
      level: 'info' | 'warning' | 'error';
      message: string;
      code?: string;
      data?: Record<string, unknown>;
    }
  | { kind: 'trained'; runId: string; summary: TrainSummary; files: TrainFiles }
  /** `outputs`: inline, or the bytes of the artifact when too many for the result (result-spill.ts). */
  | { kind: 'inferred'; runId: string; result: { outputs: InferOutputs; hN: number[][][]; cN: number[][][] } }
  /** The run stopped on request; any checkpoint it took was sent before. */
  | { kind: 'stopped'; runId: string; epoch: number; step: number }
  | { kind: 'failed'; runId: string; error: JobErrorInput };

export type RunMessage = Exclude<FromEngine, { kind: 'ready' } | { kind: 'fatal' } | { kind: 'memory' }>;
export type TerminalMessage = Extract<RunMessage, { kind: 'trained' | 'inferred' | 'stopped' | 'failed' }>;

export const TERMINAL_KINDS: ReadonlySet<RunMessage['kind']> = new Set(['trained', 'inferred', 'stopped', 'failed']);

export function isTerminal(m: RunMessage): m is TerminalMessage {
  return TERMINAL_KINDS.has(m.kind);
}
