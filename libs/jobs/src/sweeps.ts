/**
 * Hyper-parameter sweeps: the request, how it expands into trial specs, the sweep's record and how
 * finished trials are ranked. Pure (no Redis, no BullMQ); the api validates and produces the flow
 * (sweep-producer.ts), the worker gates and finishes it.
 *
 * A sweep is a BullMQ flow: a parent job named `sweep` on the `sweeps` queue (`SWEEP_QUEUE`) whose
 * children are ordinary train jobs, one per trial, on the device queues. BullMQ runs the parent
 * once every child has ended (children that fail are `ignoreDependencyOnFailure`), so the parent's
 * run is the sweep's end: it ranks the trials and completes.
 */
import { z } from 'zod';
import { ACTIVATIONS, OPTIMIZER_NAMES } from '@relu-lstm/lstm/config';
import { JOB_STATES, JobErrorSchema, type JobError, type JobState, type TrainResult } from './events';

/** The BullMQ queue of sweep parents (never a device queue: no engine work happens there). */
export const SWEEP_QUEUE = 'sweeps';
/** BullMQ job name of a sweep parent. */
export const SWEEP_JOB_NAME = 'sweep';
/** Most trials one sweep may expand to. */
export const MAX_SWEEP_TRIALS = 100;
export const MAX_SWEEP_CONCURRENCY = 64;

/** What trials are ranked by: the final validation loss (default) or the final training loss. */
export const SWEEP_METRICS = { valLoss: 'finalValLoss', loss: 'finalLoss' } as const satisfies Record<
  string,
  keyof TrainResult
>;
export type SweepMetric = keyof typeof SWEEP_METRICS;

/** The searchable fields of a random search, and the dotted path of each in a train spec. */
export const RANDOM_SPACE_PATHS = {
  learningRate: 'training.learningRate',
  hiddenSize: 'model.hiddenSize',
  numLayers: 'model.numLayers',
  activation: 'model.activation',
  clipNorm: 'training.clipNorm',
  batchSize: 'training.batchSize',
  optimizer: 'training.optimizer',
} as const;
export type RandomSpaceField = keyof typeof RANDOM_SPACE_PATHS;

const scalar = z.union([z.number(), z.string(), z.boolean(), z.null()]);
/** A continuous range, sampled uniformly (or log-uniformly: learning rates). */
const range = z
  .strictObject({ min: z.number(), max: z.number(), log: z.boolean().default(false) })
  .refine((r) => r.min <= r.max && (!r.log || r.min > 0), {
    message: 'expected min <= max (and min > 0 with log)',
  });
const intChoices = z.array(z.number().int().positive()).min(1).max(MAX_SWEEP_TRIALS);
const numChoices = z.array(z.number().positive()).min(1).max(MAX_SWEEP_TRIALS);

export const RandomSpaceSchema = z.strictObject({
  learningRate: z.union([range, numChoices]).optional(),
  hiddenSize: intChoices.optional(),
  numLayers: intChoices.optional(),
  activation: z.array(z.enum(ACTIVATIONS)).min(1).optional(),
  clipNorm: z.union([range, numChoices]).optional(),
  batchSize: intChoices.optional(),
  optimizer: z.array(z.enum(OPTIMIZER_NAMES)).min(1).optional(),
} satisfies Record<RandomSpaceField, z.ZodType>);

/** A grid path: dot-separated field names (`training.learningRate`). */
const GRID_PATH = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;

export const SweepSearchSchema = z.union([
  z.strictObject({
    grid: z
      .record(
        z.string().regex(GRID_PATH, 'a dotted field path such as training.learningRate'),
        z.array(scalar).min(1).max(MAX_SWEEP_TRIALS),
      )
      .refine((g) => Object.keys(g).length > 0, { message: 'at least one field to vary' }),
  }),
  z.strictObject({
    random: z.strictObject({
      seed: z
        .number()
        .int()
        .min(0)
        .max(2 ** 32 - 1),
      trials: z.number().int().min(1).max(MAX_SWEEP_TRIALS),
      space: RandomSpaceSchema.refine((s) => Object.keys(s).length > 0, { message: 'at least one field to sample' }),
    }),
  }),
]);
export type SweepSearch = z.output<typeof SweepSearchSchema>;

/** Median stopping rule: a trial whose metric after `afterEpochs` epochs is worse than the median of
 * the trials that reached that epoch before it (at least `minTrials` of them) is stopped. */
export const EarlyStopSchema = z.strictObject({
  afterEpochs: z.number().int().min(1),
  minTrials: z.number().int().min(1).default(2),
});
export type EarlyStop = z.output<typeof EarlyStopSchema>;

export const SweepRequestSchema = z.strictObject({
  /** A train spec (POST /v1/jobs/train's body); each trial is it with the searched fields set. */
  base: z.record(z.string(), z.unknown()),
  search: SweepSearchSchema,
  maxConcurrent: z.number().int().min(1).max(MAX_SWEEP_CONCURRENCY),
  metric: z.enum(Object.keys(SWEEP_METRICS) as [SweepMetric, ...SweepMetric[]]).default('valLoss'),
  earlyStop: EarlyStopSchema.optional(),
});
export type SweepRequest = z.output<typeof SweepRequestSchema>;
export type SweepRequestInput = z.input<typeof SweepRequestSchema>;

/** One trial before it is validated: the values chosen (by dotted path) and the spec they give. */
export interface TrialPlan {
  params: Record<string, unknown>;
  spec: Record<string, unknown>;
}

/** The trials of a request, in order; throws `SweepSizeError` past `MAX_SWEEP_TRIALS`. */
export function expandTrials(req: Pick<SweepRequest, 'base' | 'search'>): TrialPlan[] {
  const assignments = 'grid' in req.search ? gridAssignments(req.search.grid) : randomAssignments(req.search.random);
  return assignments.map((params) => ({ params, spec: withParams(req.base, params) }));
}

export class SweepSizeError extends Error {
  constructor(readonly trials: number) {
    super(`the search expands to ${trials} trials; at most ${MAX_SWEEP_TRIALS} are allowed`);
  }
}

function gridAssignments(grid: Record<string, unknown[]>): Array<Record<string, unknown>> {
  const paths = Object.keys(grid);
  const total = paths.reduce((n, p) => n * grid[p].length, 1);
  if (total > MAX_SWEEP_TRIALS) throw new SweepSizeError(total);
  let out: Array<Record<string, unknown>> = [{}];
  for (const p of paths) out = out.flatMap((a) => grid[p].map((v) => ({ ...a, [p]: v })));
  return out;
}

function randomAssignments(r: { seed: number; trials: number; space: z.output<typeof RandomSpaceSchema> }) {
  const next = mulberry32(r.seed);
  const fields = (Object.keys(RANDOM_SPACE_PATHS) as RandomSpaceField[]).filter((f) => r.space[f] !== undefined);
  return Array.from({ length: r.trials }, () =>
    Object.fromEntries(fields.map((f) => [RANDOM_SPACE_PATHS[f], sample(r.space[f]!, next)])),
  );
}

function sample(d: unknown[] | { min: number; max: number; log: boolean }, next: () => number): unknown {
  if (Array.isArray(d)) return d[Math.floor(next() * d.length)];
  if (!d.log) return d.min + (d.max - d.min) * next();
  return Math.exp(Math.log(d.min) + (Math.log(d.max) - Math.log(d.min)) * next());
}

/** A small seeded PRNG (same seed, same trials, on every machine). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A deep copy of `base` with each dotted path set (objects on the way are created). */
export function withParams(base: Record<string, unknown>, params: Record<string, unknown>): Record<string, unknown> {
  const spec = structuredClone(base);
  for (const [path, value] of Object.entries(params)) {
    const parts = path.split('.');
    let node: Record<string, unknown> = spec;
    for (const p of parts.slice(0, -1)) {
      const child = node[p];
      if (child === null || typeof child !== 'object' || Array.isArray(child)) node[p] = {};
      node = node[p] as Record<string, unknown>;
    }
    node[parts[parts.length - 1]] = value;
  }
  return spec;
}

/** Written once by the api under `keys.sweep(id)` before the flow is queued. */
export const SweepRecordSchema = z.strictObject({
  id: z.string(),
  tenant: z.string(),
  createdAt: z.number().int().min(0),
  maxConcurrent: z.number().int().min(1),
  metric: z.enum(Object.keys(SWEEP_METRICS) as [SweepMetric, ...SweepMetric[]]),
  earlyStop: EarlyStopSchema.optional(),
  trials: z.array(z.strictObject({ id: z.string(), params: z.record(z.string(), z.unknown()) })),
});
export type SweepRecord = z.output<typeof SweepRecordSchema>;

/** The data of a sweep parent job. */
export interface SweepJobData {
  sweepId: string;
  tenant: string;
}

/** What a trial is as ranked: `rank` 1 is best; null while it has no metric (running, failed...). */
export const TrialViewSchema = z.strictObject({
  id: z.string(),
  rank: z.number().int().min(1).nullable(),
  params: z.record(z.string(), z.unknown()),
  state: z.enum(JOB_STATES),
  metric: z.number().nullable(),
  epochs: z.number().int().min(0).optional(),
  error: JobErrorSchema.optional(),
});
export type TrialView = z.output<typeof TrialViewSchema>;

/** `failed`: the parent itself could not finish (its trials' own failures do not fail a sweep). */
export const SWEEP_STATES = ['queued', 'running', 'completed', 'failed', 'cancelled'] as const;
export type SweepState = (typeof SWEEP_STATES)[number];

/** GET /v1/sweeps/:id: the trials ranked (see `rankTrials`). */
export const SweepViewSchema = z.strictObject({
  id: z.string(),
  state: z.enum(SWEEP_STATES),
  metric: z.enum(Object.keys(SWEEP_METRICS) as [SweepMetric, ...SweepMetric[]]),
  maxConcurrent: z.number().int(),
  createdAt: z.number().int(),
  trials: z.array(TrialViewSchema),
});
export type SweepView = z.output<typeof SweepViewSchema>;

/** POST /v1/sweeps (202) and DELETE /v1/sweeps/:id. */
export const SweepSubmitResponseSchema = z.strictObject({
  id: z.string(),
  state: z.enum(SWEEP_STATES),
  trialIds: z.array(z.string()),
});
export type SweepSubmitResponse = z.output<typeof SweepSubmitResponseSchema>;

export interface TrialOutcome {
  id: string;
  params: Record<string, unknown>;
  state: JobState;
  result?: unknown;
  error?: JobError;
}

/** The metric of a completed trial's result; null when absent or not finite. */
export function trialMetric(result: unknown, metric: SweepMetric): number | null {
  if (result === null || typeof result !== 'object') return null;
  const v = (result as Record<string, unknown>)[SWEEP_METRICS[metric]];
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

/** Completed trials with a metric first, best (lowest) first and ranked 1..n; then the others in trial order. */
export function rankTrials(trials: readonly TrialOutcome[], metric: SweepMetric): TrialView[] {
  const views: TrialView[] = trials.map((t) => {
    const value = t.state === 'completed' ? trialMetric(t.result, metric) : null;
    const epochs = (t.result as { epochs?: unknown } | undefined)?.epochs;
    return {
      id: t.id,
      rank: null,
      params: t.params,
      state: t.state,
      metric: value,
      ...(typeof epochs === 'number' ? { epochs } : {}),
      ...(t.error ? { error: t.error } : {}),
    };
  });
  const ranked = views.filter((v) => v.metric !== null).sort((a, b) => a.metric! - b.metric!);
  ranked.forEach((v, i) => (v.rank = i + 1));
  return [...ranked, ...views.filter((v) => v.metric === null)];
}

/** The median of `values` (non-empty). */
export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Whether the median stopping rule stops a trial whose metric after K epochs is `value`, given the
 * values of the trials that reported before it. */
export function medianStops(value: number, earlier: readonly number[], rule: EarlyStop): boolean {
  return earlier.length >= rule.minTrials && value > median(earlier);
}

/**
 * KEYS: the sweep's reported set, its event stream. ARGV: trial id, stream cap, the `trial` event
 * JSON. Appends the event unless the trial's was written already, in one step, so a trial reported
 * by its worker and by the sweep's end (whichever comes first) appears once, and never after the
 * sweep's terminal event.
 */
export const REPORT_TRIAL_SCRIPT = `if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then return false end
return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'event', ARGV[3])`;
