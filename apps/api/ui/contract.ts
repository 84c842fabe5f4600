/**
 * What the page knows of the job contract, compiled in by the build (apps/api/scripts/build-ui.mjs)
 * from @relu-lstm/jobs and @relu-lstm/lstm/config, so no enum or example is written twice.
 */
import type { ARTIFACTS, JOB_PRIORITY, JobState, SweepMetric, TrainPayloadInput } from '@relu-lstm/jobs';

declare const __CONTRACT__: {
  jobStates: JobState[];
  terminalStates: JobState[];
  devices: string[];
  syntheticKinds: string[];
  activations: string[];
  optimizers: string[];
  losses: string[];
  canonicalTrain: TrainPayloadInput;
  divergenceRollback: string;
  artifacts: typeof ARTIFACTS;
  sweepMetrics: SweepMetric[];
  jobPriority: typeof JOB_PRIORITY;
};

export const CONTRACT = __CONTRACT__;
export const isTerminal = (s: JobState): boolean => CONTRACT.terminalStates.includes(s);
