/**
 * The OpenAPI 3.1 document, generated from the same zod schemas that validate requests (zod 4's
 * `z.toJSONSchema`; OpenAPI 3.1 schemas are JSON Schema 2020-12). Served at GET /docs.
 */
import { z } from 'zod';
import {
  ArtifactListSchema,
  CancelResponseSchema,
  DatasetViewSchema,
  ErrorBodySchema,
  HealthSchema,
  ReadinessSchema,
  InferResultSchema,
  InferWaitResponseSchema,
  JobErrorSchema,
  JobEventSchema,
  JobListSchema,
  JobViewSchema,
  ProgressEventSchema,
  SubmitResponseSchema,
  TrainResultSchema,
  WorkerListSchema,
  AdminOverviewSchema,
  JOB_STATES,
  type JobContract,
} from '@relu-lstm/jobs';

function jsonSchema(s: z.ZodType, io: 'input' | 'output'): Record<string, unknown> {
  const { $schema: _drop, ...rest } = z.toJSONSchema(s, { io, unrepresentable: 'any' }) as Record<string, unknown>;
  return rest;
}

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (name: string) => ({ 'application/json': { schema: ref(name) } });
const error = (description: string) => ({ description, content: json('ErrorBody') });
const idParam = { name: 'id', in: 'path', required: true, schema: { type: 'string', format: 'uuid' } };
const idempotency = {
  name: 'Idempotency-Key',
  in: 'header',
  required: false,
  description: 'Repeat a submission safely: the same key with the same body returns the first job (header Idempotent-Replayed: true); with a different body, 422. Remembered 24 h.',
  schema: { type: 'string', maxLength: 255 },
};

export function buildOpenApi(contract: JobContract, version: string): Record<string, unknown> {
  const schemas: Record<string, unknown> = {
    TrainPayload: jsonSchema(contract.TrainPayload, 'input'),
    InferPayload: jsonSchema(contract.InferPayload, 'input'),
    DatasetInput: jsonSchema(contract.DatasetInput, 'input'),
    SubmitResponse: jsonSchema(SubmitResponseSchema, 'output'),
    InferWaitResponse: jsonSchema(InferWaitResponseSchema, 'output'),
    JobView: jsonSchema(JobViewSchema, 'output'),
    JobList: jsonSchema(JobListSchema, 'output'),
    CancelResponse: jsonSchema(CancelResponseSchema, 'output'),
    ArtifactList: jsonSchema(ArtifactListSchema, 'output'),
    DatasetView: jsonSchema(DatasetViewSchema, 'output'),
    WorkerList: jsonSchema(WorkerListSchema, 'output'),
    Health: jsonSchema(HealthSchema, 'output'),
    Readiness: jsonSchema(ReadinessSchema, 'output'),
    ErrorBody: jsonSchema(ErrorBodySchema, 'output'),
    JobEvent: jsonSchema(JobEventSchema, 'output'),
    ProgressEvent: jsonSchema(ProgressEventSchema, 'output'),
    TrainResult: jsonSchema(TrainResultSchema, 'output'),
    InferResult: jsonSchema(InferResultSchema, 'output'),
    JobError: jsonSchema(JobErrorSchema, 'output'),
    AdminOverview: jsonSchema(AdminOverviewSchema, 'output'),
  };
  const badRequest = error('Invalid body or parameters: `error.issues` names each bad field with what was expected and what was received.');
  const tooLarge = error('The body is over the configured limit.');
  const notFound = error('No such job (or not yours).');
  const unavailable = error('Redis is unreachable, or too many streams are open.');
  const doc = {
    openapi: '3.1.0',
    info: {
      title: 'ReLU-LSTM job runner',
      version,
      description: 'Submit training and inference jobs for ReLU-LSTMs, follow their metrics, download their artifacts. See docs/api.md.',
    },
    paths: {
      '/v1/jobs/train': {
        post: {
          summary: 'Submit a training job',
          parameters: [idempotency],
          requestBody: { required: true, content: json('TrainPayload') },
          responses: { 202: { description: 'Queued', content: json('SubmitResponse') }, 400: badRequest, 409: error('Same Idempotency-Key still in flight.'), 413: tooLarge, 415: error('Not JSON.'), 422: error('Idempotency-Key reused with another body.'), 503: unavailable },
        },
      },
      '/v1/jobs/infer': {
        post: {
          summary: 'Submit an inference job',
          parameters: [idempotency, { name: 'wait', in: 'query', required: false, description: 'Wait (bounded, INFER_WAIT_MS) for the result.', schema: { type: 'boolean' } }],
          requestBody: { required: true, content: json('InferPayload') },
          responses: {
            200: { description: 'With wait=true: the job finished in time', content: json('InferWaitResponse') },
            202: { description: 'Queued (or still running after the wait)', content: json('SubmitResponse') },
            400: badRequest, 413: tooLarge, 422: error('Idempotency-Key reused with another body.'), 503: unavailable,
          },
        },
      },
      '/v1/jobs': {
        get: {
          summary: 'List jobs, newest first',
          parameters: [
            { name: 'state', in: 'query', required: false, schema: { type: 'string', enum: [...JOB_STATES] } },
            { name: 'limit', in: 'query', required: false, schema: { type: 'integer', minimum: 1, maximum: 100, default: 20 } },
            { name: 'cursor', in: 'query', required: false, schema: { type: 'string' }, description: 'nextCursor of the previous page' },
          ],
          responses: { 200: { description: 'A page', content: json('JobList') }, 400: badRequest },
        },
      },
      '/v1/jobs/{id}': {
        get: { summary: 'A job', parameters: [idParam], responses: { 200: { description: 'The job', content: json('JobView') }, 404: notFound } },
        delete: {
          summary: 'Cancel a job',
          parameters: [idParam],
          responses: {
            200: { description: 'Cancelled before it started', content: json('CancelResponse') },
            202: { description: 'Running: it stops at the next batch boundary', content: json('CancelResponse') },
            404: notFound,
            409: error('Already finished.'),
          },
        },
      },
      '/v1/jobs/{id}/events': {
        get: {
          summary: 'Server-Sent Events: the whole history, then live events, until the terminal state',
          parameters: [idParam, { name: 'Last-Event-ID', in: 'header', required: false, schema: { type: 'string' }, description: 'Resume after this event id' }],
          responses: {
            200: { description: '`id:` stream entry id, `event:` state | metric | log, `data:` a JobEvent', content: { 'text/event-stream': { schema: ref('JobEvent') } } },
            404: notFound,
          },
        },
      },
      '/v1/jobs/{id}/artifacts': {
        get: { summary: "The job's artifacts", parameters: [idParam], responses: { 200: { description: 'Artifacts', content: json('ArtifactList') }, 404: notFound } },
      },
      '/v1/jobs/{id}/artifacts/{name}': {
        get: {
          summary: 'Download an artifact',
          parameters: [idParam, { name: 'name', in: 'path', required: true, schema: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$' } }],
          responses: { 200: { description: 'The file', content: { 'application/octet-stream': {} } }, 400: badRequest, 404: notFound },
        },
      },
      '/v1/datasets': {
        post: {
          summary: 'Upload a dataset (JSON, or CSV: see docs/api.md for the layout)',
          parameters: [{ name: 'description', in: 'query', required: false, schema: { type: 'string' }, description: 'CSV uploads only' }],
          requestBody: { required: true, content: { 'application/json': { schema: ref('DatasetInput') }, 'text/csv': { schema: { type: 'string' } } } },
          responses: { 201: { description: 'Stored', content: json('DatasetView') }, 400: badRequest, 413: tooLarge, 415: error('Neither JSON nor CSV.') },
        },
      },
      '/v1/datasets/{id}': {
        get: { summary: 'A dataset', parameters: [idParam], responses: { 200: { description: 'The dataset', content: json('DatasetView') }, 404: error('No such dataset.') } },
      },
      '/v1/workers': {
        get: { summary: 'Live workers (from their heartbeats)', responses: { 200: { description: 'Workers', content: json('WorkerList') } } },
      },
      '/health': {
        get: { summary: 'Redis reachable? From a cached background probe (no key needed)', security: [], responses: { 200: { description: 'Up', content: json('Health') }, 503: { description: 'Redis down', content: json('Health') } } },
      },
      '/ready': {
        get: { summary: 'As /health, with Redis latency (no key needed)', security: [], responses: { 200: { description: 'Up', content: json('Readiness') }, 503: { description: 'Redis down', content: json('Readiness') } } },
      },
      '/docs': {
        get: { summary: 'This document', responses: { 200: { description: 'OpenAPI 3.1' } } },
      },
      '/v1/admin/overview': {
        get: {
          summary: 'Queues, workers and jobs across every tenant (the admin key only)',
          responses: { 200: { description: 'Overview', content: json('AdminOverview') }, 403: error('Not the admin key, or no ADMIN_KEY_HASH configured.') },
        },
      },
    } as Record<string, Record<string, { responses: Record<string, unknown> }>>,
    security: [{ bearer: [] }],
    components: {
      schemas,
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: "A tenant's API key (the admin key for /v1/admin). Without API keys configured the api serves loopback only and needs none." },
      },
    },
  };
  // Every route but /health: a key (401 without a valid one) and the rate limit (429, Retry-After).
  for (const [path, ops] of Object.entries(doc.paths)) {
    if (path === '/health' || path === '/ready') continue;
    for (const op of Object.values(ops)) {
      op.responses[401] = error('No valid key: `Authorization: Bearer <key>` (WWW-Authenticate: Bearer).');
      op.responses[429] = error("Rate limit (Retry-After: seconds) or, on the submit routes, the tenant's job quota (`quota_exceeded`).");
    }
  }
  return doc;
}
