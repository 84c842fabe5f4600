/**
 * What every job may carry besides its payload, whatever its type: a name, tags and a priority. On
 * the REST api they are top-level fields of the submit body next to the payload's (`splitSubmission`
 * takes them apart); the client and the QueueClient take them as submit options. They travel in the
 * job's envelope (`JobData`), are recorded in its meta (the job's view shows them), index the job for
 * `GET /v1/jobs?name=&tag=` (job-index.ts) and are written into `metrics.csv` and `config.json`.
 */
import { z } from 'zod';
import { JOB_PRIORITY, LABEL_LIMITS, LABEL_VALUE_PATTERN, TAG_KEY_PATTERN } from './limits';
import { validate, type ParseResult } from './validation';

const labelValue = (max: number) => z.string().min(1).max(max).regex(LABEL_VALUE_PATTERN);

export const JobNameSchema = labelValue(LABEL_LIMITS.maxNameLength);
export const TagKeySchema = z.string().min(1).max(LABEL_LIMITS.maxTagKeyLength).regex(TAG_KEY_PATTERN);
export const TagValueSchema = labelValue(LABEL_LIMITS.maxTagValueLength);

/** `{ key: value }`, at most `LABEL_LIMITS.maxTags` of them. */
export const TagsSchema = z
  .record(TagKeySchema, TagValueSchema)
  .refine((t) => Object.keys(t).length <= LABEL_LIMITS.maxTags, {
    message: `at most ${LABEL_LIMITS.maxTags} tags`,
  });
export type Tags = z.infer<typeof TagsSchema>;

export const JobPrioritySchema = z.number().int().min(JOB_PRIORITY.highest).max(JOB_PRIORITY.lowest);

export const JobOptionsSchema = z.strictObject({
  /** Free name to find the job by (`GET /v1/jobs?name=`); need not be unique. */
  name: JobNameSchema.optional(),
  /** Key/value labels (`GET /v1/jobs?tag=key:value`). */
  tags: TagsSchema.optional(),
  /** 1 (highest) to 10 (lowest) within the tenant; default 5. */
  priority: JobPrioritySchema.default(JOB_PRIORITY.default),
});
/** Name, tags and priority as validated (priority filled in). */
export type JobOptions = z.output<typeof JobOptionsSchema>;
export type JobOptionsInput = z.input<typeof JobOptionsSchema>;

/** The fields of a submit body that are the job's options rather than its payload's. */
export const JOB_OPTION_FIELDS = ['name', 'tags', 'priority'] as const satisfies ReadonlyArray<keyof JobOptions>;

/** A submit body taken apart: the job options' fields, and the rest (the payload). Not an object: all payload. */
export function splitSubmission(body: unknown): { options: Record<string, unknown>; payload: unknown } {
  if (!body || typeof body !== 'object' || Array.isArray(body)) return { options: {}, payload: body };
  const options: Record<string, unknown> = {};
  const payload: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(body)) {
    if ((JOB_OPTION_FIELDS as readonly string[]).includes(k)) options[k] = v;
    else payload[k] = v;
  }
  return { options, payload };
}

/** A submit body validated: the payload against `schema`, the job options against theirs; every issue of both. */
export function validateSubmission<S extends z.ZodType>(
  schema: S,
  body: unknown,
): ParseResult<{ payload: z.output<S>; options: JobOptions }> {
  const split = splitSubmission(body);
  const o = validate(JobOptionsSchema, split.options);
  const p = validate(schema, split.payload);
  if (!o.ok || !p.ok) return { ok: false, issues: [...(o.ok ? [] : o.issues), ...(p.ok ? [] : p.issues)] };
  return { ok: true, value: { payload: p.value, options: o.value } };
}

/** `k:v` of `GET /v1/jobs?tag=` (split at the first ':'). */
export function parseTagFilter(s: string): [string, string] | null {
  const i = s.indexOf(':');
  if (i <= 0) return null;
  const k = s.slice(0, i);
  const v = s.slice(i + 1);
  return TagKeySchema.safeParse(k).success && TagValueSchema.safeParse(v).success ? [k, v] : null;
}
