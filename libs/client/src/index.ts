/**
 * @relu-lstm/client: `RunnerClient` (REST + Server-Sent Events), `QueueClient` (straight onto the
 * BullMQ queues, for programs inside the cluster) and the errors they throw. Payload and response
 * types are those of `@relu-lstm/jobs`, re-exported here for convenience.
 */
export * from './errors';
export * from './runner-client';
export * from './queue-client';
export { parseSse, SseParser, type SseMessage } from './sse';
export type {
  ArtifactList,
  CancelResponse,
  DatasetView,
  InferPayloadInput,
  InferResult,
  JobEvent,
  JobList,
  JobResult,
  JobState,
  JobView,
  ProducedJob,
  StoredEvent,
  SubmitResponse,
  TrainPayloadInput,
  TrainResult,
  ValidationIssue,
  WorkerHeartbeat,
} from '@relu-lstm/jobs';
export { runCli, type CliIo } from './cli/main';
export { parseCliArgs, specToSubmission, UsageError, type CliArgs, type Command } from './cli/args';
