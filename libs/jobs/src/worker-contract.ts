/**
 * What the worker writes and reads beyond the payloads and events: the envelope schema of a BullMQ
 * job's data, the names of the checkpoint artifacts, the metadata key of `model.safetensors` and the
 * format of `state.json`. (An addition by the worker; the rest of the contract is in the other files.)
 */
import { z } from 'zod';
import {
  ARCHITECTURE,
  HEADS,
  resolveSequenceModelConfig,
  type ArchitectureField,
  type SequenceModelConfig,
} from '@relu-lstm/lstm/config';
import { jobDataSchemaOf, type JobData } from './job-types';
import { PayloadLimitsSchema, type PayloadLimits } from './limits';
import { makeContract, type JobContract, type ModelSpec } from './payloads';
import { validate, type ParseResult } from './validation';

/**
 * Schema of `job.data` (`JobData` in job-types.ts) with the payload schemas of `c`. `type` must also
 * equal the BullMQ job name (the consumer checks that).
 */
export function jobDataSchema(c: JobContract) {
  return jobDataSchemaOf(c);
}
type JobDataSchema = ReturnType<typeof jobDataSchema>;

const CarriedLimitsSchema = z.looseObject({ limits: PayloadLimitsSchema });

/** Schemas by the JSON of their limits: a deployment uses one or a few sets, each built once. */
const schemas = new Map<string, JobDataSchema>();
const MAX_SCHEMAS = 16;

function schemaFor(limits: PayloadLimits): JobDataSchema {
  const key = JSON.stringify(limits);
  let s = schemas.get(key);
  if (!s) {
    if (schemas.size >= MAX_SCHEMAS) schemas.delete(schemas.keys().next().value!);
    s = jobDataSchema(makeContract(limits));
    schemas.set(key, s);
  }
  return s;
}

/**
 * Validates `job.data` the way the worker does before running a job: the envelope's `limits` first,
 * then the whole envelope with the payload schemas built from those limits, so a payload the producer
 * accepted is accepted here too. A mismatch fails the job with `invalid_payload`; `type` must also
 * equal the BullMQ job name (the consumer checks that).
 */
export function validateJobData(data: unknown): ParseResult<JobData> {
  const carried = validate(CarriedLimitsSchema, data);
  if (!carried.ok) return carried;
  return validate(schemaFor(carried.value.limits), data) as ParseResult<JobData>;
}

/**
 * The job's last resumable state: the library's `encodeTrainingState` bytes (a safetensors file whose
 * metadata holds the position in the run). Replaced at every checkpoint, removed when the job
 * completes or is cancelled, kept when it fails (a retry resumes from it).
 */
export const CHECKPOINT_ARTIFACT = 'checkpoint.safetensors';
/** The metric points up to the checkpoint (JSON array of `ProgressEvent`), so `metrics.csv` spans
 * every attempt. Written before `CHECKPOINT_ARTIFACT`; on resume only points up to the checkpoint's
 * step are kept. */
export const CHECKPOINT_METRICS_ARTIFACT = 'checkpoint-metrics.json';

/**
 * `model.safetensors` metadata (`__metadata__`): under this key the JSON of `ModelArtifactConfig`.
 * A second key, `format`, is `pt` (the safetensors convention for PyTorch tensors).
 */
export const MODEL_METADATA_KEY = 'config';

const int = z.number().int();

/**
 * The `ARCHITECTURE` fields of the payload `model` a stored model was trained with, as its artifacts
 * hold them; the rest of that `model` is kept as written (loose).
 */
export const StoredArchitectureSchema = z.looseObject({
  inputSize: int,
  hiddenSize: int,
  numLayers: int,
  bias: z.boolean(),
  bidirectional: z.boolean(),
  outputSize: int,
  head: z.enum(HEADS),
} satisfies Record<ArchitectureField, z.ZodType>);
export type StoredArchitecture = z.infer<typeof StoredArchitectureSchema>;

/** The `ARCHITECTURE` fields where two models differ; weights move from one to the other only when none do. */
export function architectureMismatches(want: ModelSpec, stored: StoredArchitecture): ArchitectureField[] {
  return ARCHITECTURE.filter((f) => stored[f] !== want[f]);
}

/** What the api reads of a train job's `config.json` (the worker writes more). */
export const ConfigArtifactSchema = z.looseObject({ jobId: z.string(), model: StoredArchitectureSchema });
export type ConfigArtifact = z.infer<typeof ConfigArtifactSchema>;

/** A `SequenceModelConfig` the library accepts (`resolveSequenceModelConfig` is its check). */
const SequenceModelConfigSchema = z.custom<SequenceModelConfig>((v) => {
  try {
    resolveSequenceModelConfig(v as SequenceModelConfig);
    return true;
  } catch {
    return false;
  }
}, 'a SequenceModelConfig of @relu-lstm/lstm');

export const ModelArtifactConfigSchema = ConfigArtifactSchema.extend({
  /** `new SequenceModel(sequenceModel)` rebuilds the model. */
  sequenceModel: SequenceModelConfigSchema,
});
export type ModelArtifactConfig = z.infer<typeof ModelArtifactConfigSchema>;

const tensor3 = z.array(z.array(z.array(z.number())));

/** `state.json`: the final `(h_n, c_n)` of the trained model after reading `input`. */
export const StateArtifactSchema = z.looseObject({
  jobId: z.string(),
  /** `[L*D, B, H]`, layers then directions, as `torch.nn.LSTM` returns them. */
  h_n: tensor3,
  c_n: tensor3,
  shapes: z.strictObject({ h_n: z.array(z.number().int()), c_n: z.array(z.number().int()) }),
  input: z.looseObject({
    /** `stateInput`: the payload's; `firstBatch`: the first `batchSize` samples of the training data, unshuffled. */
    source: z.enum(['stateInput', 'firstBatch']),
    description: z.string(),
    /** `[B, T, inputSize]`. */
    shape: z.array(z.number().int()),
    lengths: z.array(z.number().int()).nullable(),
    /** The inputs themselves, unless over `STATE_INPUT_INLINE_MAX` numbers (then null). */
    inputs: tensor3.nullable(),
    /** With `firstBatch`: indices of the samples in the training data, [start, end). */
    samples: z.tuple([z.number().int(), z.number().int()]).optional(),
  }),
  /** What the LSTM started from: zeros, or the state training started from (`initialState` / `fromJob`). */
  initialState: z.enum(['zeros', 'initialState', 'fromJob']),
});
export type StateArtifact = z.infer<typeof StateArtifactSchema>;

/** Largest input (in numbers) that `state.json` copies into `input.inputs`. */
export const STATE_INPUT_INLINE_MAX = 100_000;
