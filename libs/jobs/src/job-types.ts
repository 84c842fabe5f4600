/**
 * What each job type is to every process: its payload schema, its result schema and its default
 * attempts. The names are `JOB_TYPES` (events.ts); this table has one entry per name, and each app
 * keeps its own table of what only it needs (the api's reference checks, the worker's handlers and
 * timeouts, the engine's entries), each `satisfies Record<JobType, ...>` or mapped over `JobType`.
 * Adding a type is one name, one entry here and its handler: the compiler lists every other place.
 */
import { z } from 'zod';
import { InferResultSchema, TrainResultSchema, JOB_TYPES, type JobType, type StateEvent } from './events';
import { PayloadLimitsSchema, type PayloadLimits } from './limits';
import { JobNameSchema, TagsSchema, type JobOptions } from './job-options';
import { ModelVersionRefSchema, type ModelVersionRef } from './model-names';
import type { InferPayload, JobContract, TrainPayload } from './payloads';

/**
 * Where a payload takes a trained model from, and the field that names it: an earlier train job's
 * artifacts, or a registered model version (resolved at submission, `JobData.modelVersion`).
 */
export type PayloadModelRef = { field: string; jobId: string } | { field: string; registered: string };

export interface JobTypeSpec {
  /** The payload schema within a contract (a contract is built for one set of limits). */
  payload: (c: JobContract) => z.ZodType;
  /** The job's return value, also the `result` of its `completed` event. */
  result: z.ZodType;
  /** BullMQ attempts when the api's configuration does not say (`DEFAULT_JOB_POLICY`). */
  attempts: number;
  /** How error messages name a payload of this type. */
  label: string;
  /** The trained model the payload names, if any (the api resolves and checks it, the worker loads it). */
  modelRef: (p: never) => PayloadModelRef | null;
}

export const JOB_TYPE_SPECS = {
  train: {
    payload: (c: JobContract) => c.TrainPayload,
    result: TrainResultSchema,
    attempts: 3,
    label: 'train payload',
    modelRef: (p: TrainPayload): PayloadModelRef | null =>
      p.fromJob ? { field: 'fromJob', jobId: p.fromJob } : p.from ? { field: 'from', registered: p.from } : null,
  },
  infer: {
    payload: (c: JobContract) => c.InferPayload,
    result: InferResultSchema,
    attempts: 2,
    label: 'infer payload',
    modelRef: (p: InferPayload): PayloadModelRef | null =>
      p.modelJobId
        ? { field: 'modelJobId', jobId: p.modelJobId }
        : typeof p.model === 'string'
          ? { field: 'model', registered: p.model }
          : null,
  },
} as const satisfies Record<JobType, JobTypeSpec>;

type PayloadSchemaOf<T extends JobType> = ReturnType<(typeof JOB_TYPE_SPECS)[T]['payload']>;
/** A validated payload of type `T`, defaults filled in: what the worker receives. */
export type PayloadOf<T extends JobType> = z.output<PayloadSchemaOf<T>>;
/** What a caller may send as a payload of type `T` (defaults optional). */
export type PayloadInputOf<T extends JobType> = z.input<PayloadSchemaOf<T>>;
export type ResultOf<T extends JobType> = z.output<(typeof JOB_TYPE_SPECS)[T]['result']>;
/** Any job's result; a type whose result the `completed` event (events.ts) does not accept fails here. */
export type JobResult = Accepting<NonNullable<StateEvent['result']>, ResultOf<JobType>>;
type Accepting<A, B extends A> = B;

/**
 * The data of every BullMQ job: the validated payload (defaults filled), who asked for it, the
 * limits it was validated under (the worker validates it again with those, `validateJobData`), the
 * job's name and tags (job-options.ts: common to every type, so they live here, not in a payload)
 * and, when the payload names a registered model, the version it resolved to at submission.
 */
export type JobData = {
  [T in JobType]: {
    type: T;
    tenant: string;
    limits: PayloadLimits;
    payload: PayloadOf<T>;
    modelVersion?: ModelVersionRef;
  } & JobLabels;
}[JobType];
/** The options of a job the worker writes into its artifacts. */
export type JobLabels = Partial<Pick<JobOptions, 'name' | 'tags'>>;
export type JobDataOf<T extends JobType> = Extract<JobData, { type: T }>;

/** The payload schema of `type` within contract `c`. */
export function payloadSchema<T extends JobType>(type: T, c: JobContract): PayloadSchemaOf<T> {
  return JOB_TYPE_SPECS[type].payload(c) as PayloadSchemaOf<T>;
}

/** The trained model a payload of `type` names, if any. */
export function modelRefOf<T extends JobType>(type: T, payload: PayloadOf<T>): PayloadModelRef | null {
  return (JOB_TYPE_SPECS[type].modelRef as (p: PayloadOf<T>) => PayloadModelRef | null)(payload);
}

/** Where the worker reads a payload's trained model: the artifact-store id and how messages name it. */
export interface ModelSource {
  storeId: string;
  /** The payload field that named it. */
  field: string;
  label: string;
}

/** The trained model of a job's data, if it names one; a registered one by the version it resolved to. */
export function modelSourceOf(data: Pick<JobData, 'type' | 'payload' | 'modelVersion'>): ModelSource | null {
  const ref = modelRefOf(data.type, data.payload);
  if (!ref) return null;
  if ('jobId' in ref) return { storeId: ref.jobId, field: ref.field, label: `job ${ref.jobId}` };
  const v = data.modelVersion;
  if (!v)
    throw new Error(`${ref.field}: ${ref.registered} was not resolved at submission (the job has no modelVersion)`);
  return { storeId: v.storageId, field: ref.field, label: `model ${v.name}@${v.version}` };
}

/** A record with one value per job type, computed from the type. */
export function byJobType<V>(value: (type: JobType) => V): Record<JobType, V> {
  return Object.fromEntries(JOB_TYPES.map((t) => [t, value(t)])) as Record<JobType, V>;
}

/** The end of a switch over job types that handled every one: a new type fails to compile here. */
export function unknownJobType(type: never): never {
  throw new Error(`unknown job type ${JSON.stringify(type)}`);
}

/** Schema of `job.data` for contract `c`: an envelope per job type, told apart by `type`. */
export function jobDataSchemaOf(c: JobContract): z.ZodType<JobData> {
  const envelope = (type: JobType) =>
    z.strictObject({
      type: z.literal(type),
      tenant: z.string().min(1),
      limits: PayloadLimitsSchema,
      payload: JOB_TYPE_SPECS[type].payload(c),
      name: JobNameSchema.optional(),
      tags: TagsSchema.optional(),
      modelVersion: ModelVersionRefSchema.optional(),
    });
  const [first, ...rest] = JOB_TYPES.map(envelope);
  return z.discriminatedUnion('type', [first, ...rest]).superRefine((d, ctx) => {
    // A registered model is loaded by the version the producer resolved, never looked up again.
    const ref = modelRefOf(d.type, d.payload as never);
    const registered = ref !== null && 'registered' in ref;
    if (registered !== (d.modelVersion !== undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: ['modelVersion'],
        message: registered
          ? `expected the version ${ref.field} resolved to (set by the producer), received none`
          : 'expected no modelVersion: the payload names no registered model',
      });
    }
  }) as unknown as z.ZodType<JobData>;
}
