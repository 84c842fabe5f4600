/**
 * The registry's name rules and the version reference a job records (models.ts), apart so the
 * payload schemas and the job-type table can use them without an import cycle.
 */
import { z } from 'zod';

/** Model names: one key and path segment; no '@' (it separates the version or alias). */
export const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** Aliases start with a letter, so `name@3` is always a version number. */
export const MODEL_ALIAS = /^[A-Za-z][A-Za-z0-9_-]{0,31}$/;
/** `name@latest` is the newest version, like `name`; no alias may take the word. */
export const LATEST_ALIAS = 'latest';
/** `name`, `name@<version>` or `name@<alias>`. */
export const MODEL_REF = /^([A-Za-z0-9][A-Za-z0-9._-]{0,63})(?:@([1-9][0-9]{0,8}|[A-Za-z][A-Za-z0-9_-]{0,31}))?$/;

/** A resolved reference: what a job records (`JobData.modelVersion`) and the worker loads from. */
export const ModelVersionRefSchema = z.strictObject({
  name: z.string(),
  version: z.number().int().min(1),
  storageId: z.string(),
  jobId: z.string(),
});
export type ModelVersionRef = z.infer<typeof ModelVersionRefSchema>;
