/**
 * What a job costs the engine that runs it: memory (bytes of the engine process's resident set, its
 * start-up baseline included) and work (floating-point operations), estimated from the job's shape.
 * One function for every process: the api refuses a job whose estimate exceeds
 * `LIMIT_MAX_JOB_MEMORY_MB` (400, naming the estimate and the bound), and the worker checks it
 * again and bounds its engine by the same budget (V8 heap flag, RSS watchdog).
 *
 * The constants are calibrated against the engine's measured peak RSS (VmHWM) for a range of
 * shapes on the wasm backend (`node bench/dist/cost.bench.js` after `npm run build`, numbers in
 * README "Guarantees"); the estimate is meant to lie above the measurement, so a job that passes
 * fits its budget.
 */
import type { JobType } from './events';
import { unknownJobType } from './job-types';
import { inlineModelOf, type InferPayload, type ModelSpec, type TrainPayload } from './payloads';
import type { ValidationIssue } from './validation';

const F32 = 4;
/** Resident set of an idle engine (Node, tfjs, one backend) before any job. */
export const ENGINE_BASE_BYTES = 192 * 1024 ** 2;
/** Per hidden unit per time step per sample: floats BPTT keeps (gate pre-activations, gates, c, h, tanh(c)), their gradients and the backend's temporaries. */
const BPTT_FLOATS_PER_UNIT = 40;
/** The same for a forward pass only: a layer's sequences, input projection and per-step tensors. */
const INFER_FLOATS_PER_UNIT = 24;
/** A number in a nested JS array (a double) and the header of each innermost array. */
const JS_NUMBER_BYTES = 8;
const JS_ARRAY_BYTES = 48;
/** Optimizer slots per parameter. */
const OPTIMIZER_SLOTS = { sgd: 0, momentum: 1, adam: 2, rmsprop: 2 } as const satisfies Record<
  TrainPayload['training']['optimizer'],
  number
>;
/** Copies of the weights a run holds: live, gradients, update temporaries; and per copy of weights plus slots: divergence rollback state, checkpoint encoding and its IPC copy, the final files. */
const WEIGHT_COPIES = 8;
const STATE_COPIES = 6;

/** Most output numbers an infer result carries inline (~20 MB of JSON); more go to the `outputs.safetensors` artifact. */
export const INFER_INLINE_OUTPUTS_MAX = 1_000_000;
/** The artifact of an infer job whose outputs were too big for its result: one F32 tensor `outputs` `[B, T, O]`. */
export const INFER_OUTPUTS_ARTIFACT = 'outputs.safetensors';

/** The fields of a model that size it. */
export type ModelShape = Pick<
  ModelSpec,
  'inputSize' | 'hiddenSize' | 'numLayers' | 'bias' | 'bidirectional' | 'outputSize'
>;

/** The shape of a training set the payload only refers to (an uploaded dataset). */
export interface DataShape {
  samples: number;
  seqLen: number;
}

export interface JobCost {
  /** Estimated peak resident set of the engine running the job, baseline included. */
  memoryBytes: number;
  /** Estimated floating-point operations of the whole job. */
  flops: number;
  /** Where the memory goes (bytes), for error messages and calibration. */
  parts: Record<'base' | 'parameters' | 'activations' | 'data' | 'outputs', number>;
}

/** Trainable numbers of a model: every layer and direction's `W_ih`, `W_hh`, biases, and the head. */
export function parameterCount(m: ModelShape): number {
  const d = m.bidirectional ? 2 : 1;
  const h = m.hiddenSize;
  let n = 0;
  for (let l = 0; l < m.numLayers; l++) {
    const inSize = l === 0 ? m.inputSize : d * h;
    n += d * (4 * h * (inSize + h) + (m.bias ? 8 * h : 0));
  }
  return n + m.outputSize * (d * h + 1);
}

/** Multiply-adds of one sample's forward pass over one time step, times 2. */
function forwardFlopsPerStep(m: ModelShape): number {
  return 2 * parameterCount(m);
}

/** Bytes of a `[a, b, c]` nested JS array of numbers. */
function jsTensorBytes(a: number, b: number, c: number): number {
  return a * b * (c * JS_NUMBER_BYTES + JS_ARRAY_BYTES);
}

function shape3(v: unknown[][][]): [number, number, number] {
  return [v.length, v[0]?.length ?? 0, v[0]?.[0]?.length ?? 0];
}

function trainData(p: TrainPayload, dataset: DataShape | undefined): DataShape & { inlineBytes: number } {
  const d = p.data;
  if (d.inline) {
    const [n, t, i] = shape3(d.inline.x);
    const o = p.model.outputSize;
    return {
      samples: n,
      seqLen: t,
      inlineBytes:
        jsTensorBytes(n, t, i) + (p.model.head === 'manyToMany' ? jsTensorBytes(n, t, o) : jsTensorBytes(1, n, o)),
    };
  }
  if (d.synthetic) return { samples: d.synthetic.samples, seqLen: d.synthetic.seqLen, inlineBytes: 0 };
  return { samples: dataset?.samples ?? 0, seqLen: dataset?.seqLen ?? 0, inlineBytes: 0 };
}

/**
 * The cost of a train job. `dataset`: the shape of the uploaded dataset it names (without it, a
 * `datasetId` job is costed without its data, which the engine's watchdog still bounds).
 */
function estimateTrainCost(p: TrainPayload, dataset?: DataShape): JobCost {
  const m = p.model;
  const t = p.training;
  const d = m.bidirectional ? 2 : 1;
  const params = parameterCount(m);
  const data = trainData(p, dataset);
  const batch = Math.min(t.batchSize, Math.max(1, data.samples));
  const slots = OPTIMIZER_SLOTS[t.optimizer];
  const parameters = params * F32 * (WEIGHT_COPIES + STATE_COPIES * (1 + slots));
  const activations = m.numLayers * d * data.seqLen * batch * m.hiddenSize * BPTT_FLOATS_PER_UNIT * F32;
  // The set as tensors (x and y), plus one shuffled copy of a batch.
  const perSample = data.seqLen * (m.inputSize + m.outputSize) * F32;
  const dataBytes = data.inlineBytes + data.samples * perSample + batch * perSample;
  const flops = 3 * forwardFlopsPerStep(m) * data.seqLen * data.samples * t.epochs;
  return total({ parameters, activations, data: dataBytes, outputs: 0 }, flops);
}

/** The cost of an infer job: the model, one forward pass over `inputs`, and its result. */
function estimateInferCost(p: InferPayload, model: ModelShape): JobCost {
  const d = model.bidirectional ? 2 : 1;
  const [b, t, i] = shape3(p.inputs);
  const params = parameterCount(model);
  // Inline weights arrive as JS arrays as well.
  const parameters = params * F32 * (inlineModelOf(p) ? 1 + JS_NUMBER_BYTES / F32 : 1);
  // A layer's input and output sequences, its input projection and the time loop's per-step tensors; the final states.
  const states = 2 * model.numLayers * d * b * model.hiddenSize * (F32 + JS_NUMBER_BYTES);
  const activations = b * t * d * model.hiddenSize * INFER_FLOATS_PER_UNIT * F32 + states;
  const dataBytes = jsTensorBytes(b, t, i) + b * t * i * F32;
  const outs = b * t * model.outputSize;
  // Inline: a tensor, then nested JS arrays of it; spilled: a tensor, its bytes and the artifact's.
  const outputs =
    outs <= INFER_INLINE_OUTPUTS_MAX ? outs * F32 + jsTensorBytes(b, t, model.outputSize) : 3 * outs * F32;
  const flops = forwardFlopsPerStep(model) * b * t;
  return total({ parameters, activations, data: dataBytes, outputs }, flops);
}

/** A job as the cost estimate sees it; an infer job's model is its inline config or that of the train job it names. */
export type CostedJob =
  | { type: 'train'; payload: TrainPayload; dataset?: DataShape }
  | { type: 'infer'; payload: InferPayload; model: ModelShape };

/** The one estimate of a job's memory and work, used by the api's validation and the worker. */
export function estimateJobCost(job: CostedJob): JobCost {
  switch (job.type) {
    case 'train':
      return estimateTrainCost(job.payload, job.dataset);
    case 'infer':
      return estimateInferCost(job.payload, job.model);
    default:
      return unknownJobType(job);
  }
}

/** The payload field a cost issue of each job type names: what makes that job big. */
const COST_ISSUE_PATH = { train: 'model', infer: 'inputs' } as const satisfies Record<JobType, string>;

function total(parts: Omit<JobCost['parts'], 'base'>, flops: number): JobCost {
  const all = { base: ENGINE_BASE_BYTES, ...parts };
  const memoryBytes = Object.values(all).reduce((a, v) => a + v, 0);
  return { memoryBytes: Math.ceil(memoryBytes), flops, parts: all };
}

const MB = 1024 ** 2;

/** Rounded to MB for messages. */
export function formatMb(bytes: number): string {
  return `${Math.ceil(bytes / MB)} MB`;
}

/** Why a job is over its memory budget, for a 400 (api) or a `resource_exhausted` failure (worker); null: it fits. */
export function overBudget(
  cost: JobCost,
  maxJobMemoryMb: number,
): { expected: string; received: string; message: string } | null {
  if (cost.memoryBytes <= maxJobMemoryMb * MB) return null;
  const big = Object.entries(cost.parts)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 2)
    .map(([k, v]) => `${k} ${formatMb(v)}`)
    .join(', ');
  return {
    expected: `an estimated engine memory of at most ${maxJobMemoryMb} MB (LIMIT_MAX_JOB_MEMORY_MB)`,
    received: `${formatMb(cost.memoryBytes)} (${big})`,
    message: `the job needs an estimated ${formatMb(cost.memoryBytes)} of engine memory, over the bound of ${maxJobMemoryMb} MB (LIMIT_MAX_JOB_MEMORY_MB); largest parts: ${big}`,
  };
}

/** The 400 issue of a job over `maxJobMemoryMb`, or null. `path`: the part of the payload that sizes the job. */
export function jobCostIssue(job: CostedJob, maxJobMemoryMb: number): ValidationIssue | null {
  const over = overBudget(estimateJobCost(job), maxJobMemoryMb);
  if (!over) return null;
  return {
    path: COST_ISSUE_PATH[job.type],
    code: 'too_big',
    message: over.message,
    expected: over.expected,
    received: over.received,
  };
}
