/**
 * The OpenAPI 3.1 document, generated from the same zod schemas that validate requests (zod 4's
 * `z.toJSONSchema`; OpenAPI 3.1 schemas are JSON Schema 2020-12), and from the route table
 * (routes.ts): each route's summary, parameters and answers, and those its access rule adds. Served
 * at GET /docs.
 */
import { z } from 'zod';
import {
  ArtifactListSchema,
  CancelResponseSchema,
  DatasetListSchema,
  DatasetViewSchema,
  ErrorBodySchema,
  HealthSchema,
  ReadinessSchema,
  InferResultSchema,
  InferWaitResponseSchema,
  JobErrorSchema,
  JobEventSchema,
  JobListSchema,
  JobOptionsSchema,
  JobViewSchema,
  ProgressEventSchema,
  SubmitResponseSchema,
  TrainResultSchema,
  WorkerListSchema,
  AdminOverviewSchema,
  ModelAliasViewSchema,
  ModelListSchema,
  ModelVersionViewSchema,
  ModelViewSchema,
  RegisterModelSchema,
  SetAliasSchema,
  SweepRequestSchema,
  SweepSubmitResponseSchema,
  SweepViewSchema,
  OpenSessionSchema,
  SessionViewSchema,
  SessionStepSchema,
  SessionStepResultSchema,
  type JobContract,
} from '@relu-lstm/jobs';
import {
  ACCESS_RESPONSES,
  PATH_PARAMETERS,
  ROUTES,
  type Content,
  type RouteResponse,
  type RouteSpec,
  type SchemaName,
} from '../routes';

function jsonSchema(s: z.ZodType, io: 'input' | 'output'): Record<string, unknown> {
  const { $schema: _drop, ...rest } = z.toJSONSchema(s, { io, unrepresentable: 'any' }) as Record<string, unknown>;
  return rest;
}

/** A submit body: the payload's fields and the job options' (name, tags, priority) side by side. */
function submitBody(payload: z.ZodType): Record<string, unknown> {
  const body = jsonSchema(payload, 'input');
  const options = jsonSchema(JobOptionsSchema, 'input');
  return {
    ...body,
    properties: { ...(body.properties as object), ...(options.properties as object) },
  };
}

const ref = (name: SchemaName) => ({ $ref: `#/components/schemas/${name}` });

function contentOf(list: Content[]): Record<string, unknown> {
  return Object.fromEntries(
    list.map((c) => [
      c.type,
      c.schema === undefined ? {} : { schema: c.schema === 'string' ? { type: 'string' } : ref(c.schema) },
    ]),
  );
}

const response = (r: RouteResponse) =>
  r.content ? { description: r.description, content: contentOf(r.content) } : { description: r.description };

function operation(route: RouteSpec): Record<string, unknown> {
  const pathParams = [...route.path.matchAll(/:(\w+)/g)].map(([, name]) => {
    const schema = PATH_PARAMETERS[name];
    if (!schema) throw new Error(`routes: ${route.method} ${route.path}: no PATH_PARAMETERS entry for :${name}`);
    return { name, in: 'path', required: true, schema };
  });
  const parameters = [...pathParams, ...(route.parameters ?? []).map((p) => ({ ...p, required: false }))];
  const answers = { ...route.responses, ...ACCESS_RESPONSES[route.access] };
  const responses = Object.fromEntries(Object.entries(answers).map(([status, r]) => [status, response(r)]));
  return {
    summary: route.summary,
    ...(parameters.length ? { parameters } : {}),
    ...(route.request ? { requestBody: { required: true, content: contentOf(route.request) } } : {}),
    ...(route.access === 'public' ? { security: [] } : {}),
    responses,
  };
}

/** `/v1/jobs/:id` -> `/v1/jobs/{id}`. */
const openApiPath = (path: string) => path.replace(/:(\w+)/g, '{$1}');

export function buildOpenApi(contract: JobContract, version: string): Record<string, unknown> {
  const schemas = {
    TrainPayload: submitBody(contract.TrainPayload),
    InferPayload: submitBody(contract.InferPayload),
    DatasetInput: jsonSchema(contract.DatasetInput, 'input'),
    SubmitResponse: jsonSchema(SubmitResponseSchema, 'output'),
    InferWaitResponse: jsonSchema(InferWaitResponseSchema, 'output'),
    JobView: jsonSchema(JobViewSchema, 'output'),
    JobList: jsonSchema(JobListSchema, 'output'),
    CancelResponse: jsonSchema(CancelResponseSchema, 'output'),
    ArtifactList: jsonSchema(ArtifactListSchema, 'output'),
    DatasetView: jsonSchema(DatasetViewSchema, 'output'),
    DatasetList: jsonSchema(DatasetListSchema, 'output'),
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
    RegisterModel: jsonSchema(RegisterModelSchema, 'input'),
    SetAlias: jsonSchema(SetAliasSchema, 'input'),
    ModelVersionView: jsonSchema(ModelVersionViewSchema, 'output'),
    ModelView: jsonSchema(ModelViewSchema, 'output'),
    ModelList: jsonSchema(ModelListSchema, 'output'),
    ModelAliasView: jsonSchema(ModelAliasViewSchema, 'output'),
    SweepRequest: jsonSchema(SweepRequestSchema, 'input'),
    SweepSubmitResponse: jsonSchema(SweepSubmitResponseSchema, 'output'),
    SweepView: jsonSchema(SweepViewSchema, 'output'),
    OpenSession: jsonSchema(OpenSessionSchema, 'input'),
    SessionView: jsonSchema(SessionViewSchema, 'output'),
    SessionStep: jsonSchema(SessionStepSchema, 'input'),
    SessionStepResult: jsonSchema(SessionStepResultSchema, 'output'),
  } satisfies Record<SchemaName, unknown>;
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of ROUTES) (paths[openApiPath(route.path)] ??= {})[route.method.toLowerCase()] = operation(route);
  return {
    openapi: '3.1.0',
    info: {
      title: 'ReLU-LSTM job runner',
      version,
      description:
        'Submit training and inference jobs for ReLU-LSTMs, follow their metrics, download their artifacts. See docs/api.md.',
    },
    paths,
    security: [{ bearer: [] }],
    components: {
      schemas,
      securitySchemes: {
        bearer: {
          type: 'http',
          scheme: 'bearer',
          description:
            "A tenant's API key (the admin key for /v1/admin). Without API keys configured the api serves loopback only and needs none.",
        },
      },
    },
  };
}
