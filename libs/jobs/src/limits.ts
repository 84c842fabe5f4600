/**
 * Bounds of what a job may ask for. The payload schemas are built from one `PayloadLimits` object
 * (`makeContract(limits)`), so a deployment can tighten or raise them from its validated configuration
 * (`LIMIT_*` of apps/api) without touching the schemas. Out-of-range values fail validation with the bound named.
 *
 * The limits a payload was accepted under travel with its job (`JobData.limits`, set by `planJob`), and
 * the worker validates the payload with those: a job the producer accepted is never refused for a bound.
 */
import { z } from 'zod';

const bound = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER);

export const PayloadLimitsSchema = z.strictObject({
  /** Largest `model.inputSize`. */
  maxInputSize: bound,
  /** Largest `model.hiddenSize`. */
  maxHiddenSize: bound,
  /** Largest `model.numLayers`. */
  maxLayers: bound,
  /** Largest `model.outputSize`. */
  maxOutputSize: bound,
  /** Longest sequence (T) in any inline array or synthetic generator. */
  maxSeqLen: bound,
  /** Most samples (N) in a training set, inline, uploaded or synthetic. */
  maxSamples: bound,
  /** Largest `training.batchSize`. */
  maxBatchSize: bound,
  /** Largest `training.epochs`. */
  maxEpochs: bound,
  /** Most numbers in one inline array (`x`, `y`, `inputs`, a state-dict entry...). */
  maxInlineElements: bound,
  /** Largest estimated engine memory of one job, in MB (`estimateJobCost`, cost.ts); the worker bounds its engine by it too. */
  maxJobMemoryMb: bound,
});
export type PayloadLimits = z.infer<typeof PayloadLimitsSchema>;

export const DEFAULT_LIMITS: Readonly<PayloadLimits> = Object.freeze({
  maxInputSize: 4096,
  maxHiddenSize: 4096,
  maxLayers: 16,
  maxOutputSize: 4096,
  maxSeqLen: 100_000,
  maxSamples: 1_000_000,
  maxBatchSize: 65_536,
  maxEpochs: 100_000,
  maxInlineElements: 20_000_000,
  // Four engines of this size, the api and Redis fit a 2-core, 24 GB machine.
  maxJobMemoryMb: 4096,
});

/**
 * Bounds of a job's name and tags (job-options.ts). Fixed rather than configurable: tags and names
 * are parts of the search index's Redis keys (keys.ts `jobFilterIndex`), so their shape is the index's.
 */
export const LABEL_LIMITS = Object.freeze({
  /** Most tags on one job. */
  maxTags: 16,
  /** Longest tag key. */
  maxTagKeyLength: 64,
  /** Longest tag value. */
  maxTagValueLength: 128,
  /** Longest job name. */
  maxNameLength: 128,
});

/** A tag key: a letter or digit, then letters, digits, '.', '_', '-' (never ':', which splits `tag=k:v`). */
export const TAG_KEY_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
/** A tag value or a job name: printable ASCII without spaces at either end. */
export const LABEL_VALUE_PATTERN = /^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/;

/**
 * A job's priority within its tenant: 1 (highest) to 10 (lowest), 5 when not given. How it maps to
 * BullMQ's priority, and the fairness between tenants: `FAIR_SHARE` in producer.ts.
 */
export const JOB_PRIORITY = Object.freeze({ highest: 1, lowest: 10, default: 5 });
