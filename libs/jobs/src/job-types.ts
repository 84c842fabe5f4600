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
import type { JobContract } from './payloads';

export interface JobTypeSpec {
  /** The payload schema within a contract (a contract is built for one set of limits). */
  payload: (c: JobContract) => z.ZodType;
  /** The job's return value, also the `result` of its `completed` event. */
  result: z.ZodType;
  /** BullMQ attempts when the api's configuration does not say (`DEFAULT_JOB_POLICY`). */
  attempts: number;
  /** How error messages name a payload of this type. */
  label: string;
}

export const JOB_TYPE_SPECS = {
  train: {
    payload: (c: JobContract) => c.TrainPayload,
    result: TrainResultSchema,
    attempts: 3,
    label: 'train payload',
  },
  infer: {
    payload: (c: JobContract) => c.InferPayload,
    result: InferResultSchema,
    attempts: 2,
    label: 'infer payload',
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
 * limits it was validated under (the worker validates it again with those, `validateJobData`), and
 * the job's name and tags (job-options.ts: common to every type, so they live here, not in a payload).
 */
export type JobData = {
  [T in JobType]: { type: T; tenant: string; limits: PayloadLimits; payload: PayloadOf<T> } & JobLabels;
}[JobType];
/** The options of a job the worker writes into its artifacts. */
export type JobLabels = Partial<Pick<JobOptions, 'name' | 'tags'>>;
export type JobDataOf<T extends JobType> = Extract<JobData, { type: T }>;

/** The payload schema of `type` within contract `c`. */
export function payloadSchema<T extends JobType>(type: T, c: JobContract): PayloadSchemaOf<T> {
  return JOB_TYPE_SPECS[type].payload(c) as PayloadSchemaOf<T>;
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
    });
  const [first, ...rest] = JOB_TYPES.map(envelope);
  return z.discriminatedUnion('type', [first, ...rest]) as unknown as z.ZodType<JobData>;
}
