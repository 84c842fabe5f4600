/**
 * What the worker writes and reads beyond the payloads and events: the envelope schema of a BullMQ
 * job's data, the names of the checkpoint artifacts, the metadata key of `model.safetensors` and the
 * format of `state.json`. (An addition by the worker; the rest of the contract is in the other files.)
 */
import { z } from 'zod';
import { jobDataSchemaOf } from './job-types';
import { contract as defaultContract, type JobContract } from './payloads';

/**
 * Schema of `job.data` (`JobData` in job-types.ts): the worker parses every job with it and fails the
 * job with `invalid_payload` when it does not match. `type` must also equal the BullMQ job name.
 */
export function jobDataSchema(c: JobContract = defaultContract) {
  return jobDataSchemaOf(c);
}
export const JobDataSchema = jobDataSchema();

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

export const ModelArtifactConfigSchema = z.looseObject({
  jobId: z.string(),
  /** The train payload's `model` (defaults filled). */
  model: z.looseObject({
    inputSize: z.number().int(),
    hiddenSize: z.number().int(),
    numLayers: z.number().int(),
    outputSize: z.number().int(),
    head: z.string(),
  }),
  /** `SequenceModelConfig` of @relu-lstm/lstm: `new SequenceModel(sequenceModel)` rebuilds it. */
  sequenceModel: z.looseObject({ lstm: z.looseObject({}), outputSize: z.number().int(), head: z.string() }),
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
