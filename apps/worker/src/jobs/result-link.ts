/** The part of an infer result that points at its spilled outputs (engine/result-spill.ts). */
import type { InferResult } from '@relu-lstm/jobs';
import type { SpilledOutputs } from '../engine/result-spill';

export function spilledLink(jobId: string, s: SpilledOutputs): NonNullable<InferResult['outputsArtifact']> {
  return { name: s.name, shape: s.shape, url: `/v1/jobs/${jobId}/artifacts/${s.name}` };
}
