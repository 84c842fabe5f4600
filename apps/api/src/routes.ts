/**
 * Every route the api serves, written once: who may call it (the access middleware decides from
 * this table, http/access.ts) and what it takes and answers (the OpenAPI document is built from it,
 * docs/openapi.ts). The access test checks it against the routes Nest actually maps (its
 * `Mapped {path, METHOD} route` start-up lines) and walks every entry as nobody, as the wrong tenant
 * and as the owner; test/docs.test.ts checks that docs/api.md names each. Plain data: importable
 * without NestJS.
 */
import {
  ARTIFACT_NAME,
  IDEMPOTENCY_HEADER,
  JOB_STATES,
  JOB_TYPES,
  LATEST_ALIAS,
  MODEL_ALIAS,
  MODEL_NAME,
} from '@relu-lstm/jobs';

/**
 * `public`: anyone, not rate limited; `tenant`: a tenant's key; `admin`: the admin key only;
 * `operator`: the admin key when API keys are configured, anyone (on loopback, as every route then)
 * when none are: what an operator scrapes or opens on the machine itself.
 */
export type RouteAccess = 'public' | 'tenant' | 'admin' | 'operator';
export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'DELETE';

/** The component schemas of the OpenAPI document (docs/openapi.ts builds one for each name). */
export type SchemaName =
  | 'TrainPayload'
  | 'InferPayload'
  | 'DatasetInput'
  | 'SubmitResponse'
  | 'InferWaitResponse'
  | 'JobView'
  | 'JobList'
  | 'CancelResponse'
  | 'ArtifactList'
  | 'DatasetView'
  | 'DatasetList'
  | 'WorkerList'
  | 'Health'
  | 'Readiness'
  | 'ErrorBody'
  | 'JobEvent'
  | 'ProgressEvent'
  | 'TrainResult'
  | 'InferResult'
  | 'JobError'
  | 'AdminOverview'
  | 'RegisterModel'
  | 'SetAlias'
  | 'ModelVersionView'
  | 'ModelView'
  | 'ModelList'
  | 'ModelAliasView'
  | 'SweepRequest'
  | 'SweepSubmitResponse'
  | 'SweepView'
  | 'OpenSession'
  | 'SessionView'
  | 'SessionStep'
  | 'SessionStepResult';

export type MediaType =
  | 'application/json'
  | 'text/csv'
  | 'text/event-stream'
  | 'application/octet-stream'
  | 'text/html'
  | 'text/javascript'
  | 'text/css'
  | 'text/plain';

/** A body: its media type and schema (`string`: free text; none: opaque bytes). */
export interface Content {
  type: MediaType;
  schema?: SchemaName | 'string';
}

export interface RouteResponse {
  description: string;
  content?: Content[];
}

export interface RouteParameter {
  name: string;
  in: 'query' | 'header';
  description?: string;
  schema: Record<string, unknown>;
}

export interface RouteSpec {
  method: HttpMethod;
  /** As Nest maps it: `/v1/jobs/:id`. Path parameters are described by `PATH_PARAMETERS`. */
  path: string;
  access: RouteAccess;
  /**
   * An Express router mounted at `path` rather than a Nest route (Bull Board): the rule covers
   * `path` and everything under it.
   */
  mount?: true;
  /** The resource named by `:id` or `:model` (tenant routes): another tenant gets 404 for it. */
  owns?: 'job' | 'dataset' | 'model' | 'sweep' | 'session';
  summary: string;
  parameters?: RouteParameter[];
  request?: Content[];
  /** The route's own answers; 401, 403 and 429 follow from `access` (docs/openapi.ts). */
  responses: Record<number, RouteResponse>;
}

/** The files of the Swagger UI page at /docs (docs/docs.controller.ts serves them). */
export const DOCS_ASSETS = ['swagger-ui.css', 'swagger-ui-bundle.js', 'favicon-32x32.png', 'docs-ui.js'] as const;
export type DocsAsset = (typeof DOCS_ASSETS)[number];

/** Where Bull Board is mounted (admin/queue-board.ts). */
export const QUEUE_BOARD_PATH = '/v1/admin/queues';

/** The path parameters any route may use, by name. */
export const PATH_PARAMETERS: Record<string, Record<string, unknown>> = {
  id: { type: 'string', format: 'uuid' },
  name: { type: 'string', pattern: ARTIFACT_NAME.source },
  model: { type: 'string', pattern: MODEL_NAME.source },
  version: { type: 'integer', minimum: 1 },
  alias: { type: 'string', pattern: MODEL_ALIAS.source, not: { const: LATEST_ALIAS } },
  asset: { type: 'string', enum: [...DOCS_ASSETS] },
};

const json = (schema: SchemaName): Content[] => [{ type: 'application/json', schema }];
const ok = (description: string, schema?: SchemaName): RouteResponse => ({
  description,
  content: schema && json(schema),
});
const error = (description: string): RouteResponse => ({ description, content: json('ErrorBody') });

const BAD_REQUEST = error(
  'Invalid body or parameters: `error.issues` names each bad field with what was expected and what was received.',
);
const TOO_LARGE = error('The body is over the configured limit.');
const NOT_FOUND = error('No such job (or not yours).');
const MODEL_NOT_FOUND = error('No such model, version or alias (or not yours).');
const UNAVAILABLE = error('Redis is unreachable, or too many streams are open.');
const REUSED_KEY = error('Idempotency-Key reused with another body.');
const STORE_UNAVAILABLE = error('The artifact store is down or refused access (Retry-After: seconds).');
const ADMIN_REFUSALS: Record<number, RouteResponse> = {
  401: error('No key: `Authorization: Bearer <key>` (WWW-Authenticate: Bearer).'),
  403: error('Not the admin key, or no ADMIN_KEY_HASH configured.'),
  429: error('Rate limit (Retry-After: seconds).'),
};
/** The answers every route of an access rule may give besides its own (http/access.ts gives them). */
export const ACCESS_RESPONSES: Record<RouteAccess, Record<number, RouteResponse>> = {
  public: {},
  tenant: {
    401: error('No valid key: `Authorization: Bearer <key>` (WWW-Authenticate: Bearer).'),
    429: error(
      "Rate limit (Retry-After: seconds) or, on the submit, upload and register routes, the tenant's job, dataset or model-version quota (`quota_exceeded`).",
    ),
  },
  admin: ADMIN_REFUSALS,
  operator: ADMIN_REFUSALS,
};

/** A file of the dashboard (dashboard.controller.ts): public, since the page holds no data; its API calls carry the key. */
const dashboardFile = (path: string, type: MediaType, summary: string): RouteSpec => ({
  method: 'GET',
  path,
  access: 'public',
  summary,
  responses: {
    200: { description: summary, content: [{ type, schema: 'string' }] },
    304: { description: 'Not modified (If-None-Match matched the ETag)' },
    404: error('The dashboard is not built (npm run build builds it).'),
  },
});

const IDEMPOTENCY: RouteParameter = {
  name: IDEMPOTENCY_HEADER,
  in: 'header',
  description:
    'Repeat a submission safely: the same key with the same body returns the first job (header Idempotent-Replayed: true); with a different body, 422. Remembered 24 h.',
  schema: { type: 'string', maxLength: 255 },
};

/** The listings' paging (http/cursor.ts). */
const PAGE_PARAMETERS: RouteParameter[] = [
  { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 100, default: 20 } },
  { name: 'cursor', in: 'query', description: 'nextCursor of the previous page', schema: { type: 'string' } },
];

export const ROUTES: readonly RouteSpec[] = [
  {
    method: 'GET',
    path: '/health',
    access: 'public',
    summary: 'Redis reachable? From a cached background probe (no key needed)',
    responses: { 200: ok('Up', 'Health'), 503: ok('Redis down', 'Health') },
  },
  {
    method: 'GET',
    path: '/ready',
    access: 'public',
    summary:
      'Readiness (no key needed): Redis with its latency, the artifact store with its free disk, and per queue whether a live worker serves it',
    responses: {
      200: ok('Redis and the store up (queues without a worker are reported, not refused)', 'Readiness'),
      503: ok('Redis or the artifact store down', 'Readiness'),
    },
  },
  {
    method: 'POST',
    path: '/v1/jobs/train',
    access: 'tenant',
    summary: 'Submit a training job',
    parameters: [IDEMPOTENCY],
    request: json('TrainPayload'),
    responses: {
      202: ok('Queued', 'SubmitResponse'),
      400: BAD_REQUEST,
      409: error('Same Idempotency-Key still in flight.'),
      413: TOO_LARGE,
      415: error('Not JSON.'),
      422: REUSED_KEY,
      503: UNAVAILABLE,
    },
  },
  {
    method: 'POST',
    path: '/v1/jobs/infer',
    access: 'tenant',
    summary: 'Submit an inference job',
    parameters: [
      IDEMPOTENCY,
      {
        name: 'wait',
        in: 'query',
        description: 'Wait (bounded, INFER_WAIT_MS) for the result.',
        schema: { type: 'boolean' },
      },
    ],
    request: json('InferPayload'),
    responses: {
      200: ok('With wait=true: the job finished in time', 'InferWaitResponse'),
      202: ok('Queued (or still running after the wait)', 'SubmitResponse'),
      400: BAD_REQUEST,
      413: TOO_LARGE,
      422: REUSED_KEY,
      503: UNAVAILABLE,
    },
  },
  {
    method: 'GET',
    path: '/v1/jobs',
    access: 'tenant',
    summary: 'List and search jobs, newest first',
    parameters: [
      { name: 'state', in: 'query', schema: { type: 'string', enum: [...JOB_STATES] } },
      { name: 'type', in: 'query', schema: { type: 'string', enum: [...JOB_TYPES] } },
      { name: 'name', in: 'query', description: 'The exact name given at submission', schema: { type: 'string' } },
      {
        name: 'tag',
        in: 'query',
        description: 'key:value; repeat for several tags (all must match)',
        schema: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*:.+$' },
      },
      {
        name: 'since',
        in: 'query',
        description: 'Created at or after: milliseconds since the epoch, or an ISO 8601 date',
        schema: { type: 'string' },
      },
      ...PAGE_PARAMETERS,
    ],
    responses: { 200: ok('A page', 'JobList'), 400: BAD_REQUEST },
  },
  {
    method: 'GET',
    path: '/v1/jobs/:id',
    access: 'tenant',
    owns: 'job',
    summary: 'A job',
    responses: { 200: ok('The job', 'JobView'), 404: NOT_FOUND },
  },
  {
    method: 'DELETE',
    path: '/v1/jobs/:id',
    access: 'tenant',
    owns: 'job',
    summary: 'Cancel a job',
    responses: {
      200: ok('Cancelled before it started', 'CancelResponse'),
      202: ok('Running: it stops at the next batch boundary', 'CancelResponse'),
      404: NOT_FOUND,
      409: error('Already finished.'),
    },
  },
  {
    method: 'GET',
    path: '/v1/jobs/:id/events',
    access: 'tenant',
    owns: 'job',
    summary: 'Server-Sent Events: the whole history, then live events, until the terminal state',
    parameters: [
      { name: 'Last-Event-ID', in: 'header', description: 'Resume after this event id', schema: { type: 'string' } },
    ],
    responses: {
      200: {
        description: '`id:` stream entry id, `event:` state | metric | log, `data:` a JobEvent',
        content: [{ type: 'text/event-stream', schema: 'JobEvent' }],
      },
      404: NOT_FOUND,
    },
  },
  {
    method: 'GET',
    path: '/v1/jobs/:id/artifacts',
    access: 'tenant',
    owns: 'job',
    summary: "The job's artifacts",
    responses: { 200: ok('Artifacts', 'ArtifactList'), 404: NOT_FOUND, 503: STORE_UNAVAILABLE },
  },
  {
    method: 'GET',
    path: '/v1/jobs/:id/artifacts/:name',
    access: 'tenant',
    owns: 'job',
    summary: 'Download an artifact',
    responses: {
      200: { description: 'The file', content: [{ type: 'application/octet-stream' }] },
      400: BAD_REQUEST,
      404: NOT_FOUND,
      503: STORE_UNAVAILABLE,
    },
  },
  {
    method: 'POST',
    path: '/v1/sweeps',
    access: 'tenant',
    summary: 'Start a hyper-parameter sweep: one train job per trial, children of one BullMQ flow',
    request: json('SweepRequest'),
    responses: {
      202: ok('Queued: the sweep id and its trial (job) ids', 'SweepSubmitResponse'),
      400: error(
        'Invalid sweep, or a trial spec fails the train checks: each issue path starts `trials[i].` and its message names the trial values.',
      ),
      413: TOO_LARGE,
      415: error('Not JSON.'),
      503: UNAVAILABLE,
    },
  },
  {
    method: 'GET',
    path: '/v1/sweeps/:id',
    access: 'tenant',
    owns: 'sweep',
    summary: 'A sweep: its state and its trials, ranked by the metric (best first)',
    responses: { 200: ok('The sweep', 'SweepView'), 404: error('No such sweep (or not yours).') },
  },
  {
    method: 'GET',
    path: '/v1/sweeps/:id/events',
    access: 'tenant',
    owns: 'sweep',
    summary: "Server-Sent Events of a sweep: a `trial` event per ended trial, then the sweep's terminal state",
    parameters: [
      { name: 'Last-Event-ID', in: 'header', description: 'Resume after this event id', schema: { type: 'string' } },
    ],
    responses: {
      200: {
        description: '`id:` stream entry id, `event:` trial | state, `data:` a JobEvent',
        content: [{ type: 'text/event-stream', schema: 'JobEvent' }],
      },
      404: error('No such sweep (or not yours).'),
    },
  },
  {
    method: 'DELETE',
    path: '/v1/sweeps/:id',
    access: 'tenant',
    owns: 'sweep',
    summary: 'Cancel a sweep: its queued trials are removed, its running ones stop at the next batch',
    responses: { 200: ok('Cancel requested', 'SweepSubmitResponse'), 404: error('No such sweep (or not yours).') },
  },
  {
    method: 'POST',
    path: '/v1/sessions',
    access: 'tenant',
    summary: 'Open a streaming inference session on a trained model; its (h, c) stays in Redis between steps',
    request: json('OpenSession'),
    responses: {
      201: ok('Opened', 'SessionView'),
      400: error(
        'Invalid body, no such trained model, a registry name (not in this build) or an initial state of the wrong shape.',
      ),
      415: error('Not JSON.'),
    },
  },
  {
    method: 'POST',
    path: '/v1/sessions/:id/step',
    access: 'tenant',
    owns: 'session',
    summary: 'Feed one or more time steps; continues from the state the previous step left',
    request: json('SessionStep'),
    responses: {
      200: ok(
        'The outputs of these time steps and the state after them (a repeated last seq: the stored answer)',
        'SessionStepResult',
      ),
      400: BAD_REQUEST,
      404: error('No such session (closed, expired, or not yours).'),
      409: error('`seq` is not the next step of the session (`issues[0].expected` says which is).'),
      503: error('No answer within SESSION_STEP_WAIT_MS, or the step failed; retry it with the same seq.'),
    },
  },
  {
    method: 'GET',
    path: '/v1/sessions/:id',
    access: 'tenant',
    owns: 'session',
    summary: 'A session: its model and the seq of its next step',
    responses: {
      200: ok('The session', 'SessionView'),
      404: error('No such session (closed, expired, or not yours).'),
    },
  },
  {
    method: 'DELETE',
    path: '/v1/sessions/:id',
    access: 'tenant',
    owns: 'session',
    summary: 'Close a session',
    responses: { 204: { description: 'Closed' }, 404: error('No such session (closed, expired, or not yours).') },
  },
  {
    method: 'POST',
    path: '/v1/datasets',
    access: 'tenant',
    summary: 'Upload a dataset (JSON, or CSV: see docs/api.md for the layout)',
    parameters: [{ name: 'description', in: 'query', description: 'CSV uploads only', schema: { type: 'string' } }],
    request: [
      { type: 'application/json', schema: 'DatasetInput' },
      { type: 'text/csv', schema: 'string' },
    ],
    responses: {
      201: ok('Stored', 'DatasetView'),
      400: BAD_REQUEST,
      413: error(
        'The body is over DATASET_BODY_LIMIT, or the dataset would take the tenant past MAX_DATASET_BYTES_PER_TENANT.',
      ),
      415: error('Neither JSON nor CSV.'),
      503: error('Too many uploads at once in this api process (MAX_DATASET_UPLOADS); Retry-After: seconds.'),
    },
  },
  {
    method: 'GET',
    path: '/v1/datasets',
    access: 'tenant',
    summary: "The tenant's datasets, newest first",
    parameters: PAGE_PARAMETERS,
    responses: { 200: ok('A page', 'DatasetList'), 400: BAD_REQUEST },
  },
  {
    method: 'GET',
    path: '/v1/datasets/:id',
    access: 'tenant',
    owns: 'dataset',
    summary: 'A dataset',
    responses: { 200: ok('The dataset', 'DatasetView'), 404: error('No such dataset.') },
  },
  {
    method: 'DELETE',
    path: '/v1/datasets/:id',
    access: 'tenant',
    owns: 'dataset',
    summary: 'Delete a dataset (its arrays and its record)',
    responses: {
      204: { description: 'Deleted' },
      404: error('No such dataset.'),
      409: error('Queued or running jobs use it; the message names them.'),
    },
  },
  {
    method: 'POST',
    path: '/v1/models',
    access: 'tenant',
    summary: "Register a completed train job's model as the next version of a name (its files are copied)",
    request: json('RegisterModel'),
    responses: {
      201: ok('Registered', 'ModelVersionView'),
      400: BAD_REQUEST,
      415: error('Not JSON.'),
      503: STORE_UNAVAILABLE,
    },
  },
  {
    method: 'GET',
    path: '/v1/models',
    access: 'tenant',
    summary: "The tenant's models, newest first",
    parameters: PAGE_PARAMETERS,
    responses: { 200: ok('A page', 'ModelList'), 400: BAD_REQUEST },
  },
  {
    method: 'GET',
    path: '/v1/models/:model',
    access: 'tenant',
    owns: 'model',
    summary: 'A model: its versions and aliases',
    responses: { 200: ok('The model', 'ModelView'), 404: MODEL_NOT_FOUND },
  },
  {
    method: 'GET',
    path: '/v1/models/:model/versions/:version',
    access: 'tenant',
    owns: 'model',
    summary: 'A model version, with its files to download',
    responses: { 200: ok('The version', 'ModelVersionView'), 400: BAD_REQUEST, 404: MODEL_NOT_FOUND },
  },
  {
    method: 'GET',
    path: '/v1/models/:model/versions/:version/artifacts/:name',
    access: 'tenant',
    owns: 'model',
    summary: "Download a version's file (model.safetensors: PyTorch's safetensors)",
    responses: {
      200: { description: 'The file', content: [{ type: 'application/octet-stream' }] },
      400: BAD_REQUEST,
      404: MODEL_NOT_FOUND,
      503: STORE_UNAVAILABLE,
    },
  },
  {
    method: 'DELETE',
    path: '/v1/models/:model/versions/:version',
    access: 'tenant',
    owns: 'model',
    summary: 'Delete a version (its files too); the last one takes the model with it',
    responses: {
      204: { description: 'Deleted' },
      400: BAD_REQUEST,
      404: MODEL_NOT_FOUND,
      409: error('An alias points at it; the message names the aliases.'),
    },
  },
  {
    method: 'PUT',
    path: '/v1/models/:model/aliases/:alias',
    access: 'tenant',
    owns: 'model',
    summary: 'Point an alias (e.g. production) at a version',
    request: json('SetAlias'),
    responses: {
      200: ok('Set', 'ModelAliasView'),
      400: BAD_REQUEST,
      404: MODEL_NOT_FOUND,
      415: error('Not JSON.'),
    },
  },
  {
    method: 'DELETE',
    path: '/v1/models/:model/aliases/:alias',
    access: 'tenant',
    owns: 'model',
    summary: 'Remove an alias',
    responses: { 204: { description: 'Removed' }, 400: BAD_REQUEST, 404: MODEL_NOT_FOUND },
  },
  {
    method: 'GET',
    path: '/v1/workers',
    access: 'tenant',
    summary: 'Live workers (from their heartbeats)',
    responses: { 200: ok('Workers', 'WorkerList') },
  },
  dashboardFile('/ui', 'text/html', 'The web dashboard (jobs, one job with live charts, workers, submit form)'),
  dashboardFile('/ui/app.js', 'text/javascript', "The dashboard's script (uPlot bundled)"),
  dashboardFile('/ui/app.css', 'text/css', "The dashboard's styles"),
  {
    method: 'GET',
    path: '/docs',
    access: 'public',
    summary: 'Swagger UI over this document (it asks for a key when the api has keys)',
    responses: { 200: { description: 'The page', content: [{ type: 'text/html', schema: 'string' }] } },
  },
  {
    method: 'GET',
    path: '/docs/assets/:asset',
    access: 'public',
    summary: 'A file of the Swagger UI page (served from swagger-ui-dist, no CDN)',
    responses: { 200: { description: 'The file' }, 404: error('No such asset.') },
  },
  {
    method: 'GET',
    path: '/docs/openapi.json',
    access: 'tenant',
    summary: 'This document',
    responses: { 200: ok('OpenAPI 3.1') },
  },
  {
    method: 'GET',
    path: '/metrics',
    access: 'operator',
    summary: 'Prometheus metrics of this api process and of the queues (the admin key when keys are configured)',
    responses: {
      200: {
        description: 'Prometheus text exposition format 0.0.4',
        content: [{ type: 'text/plain', schema: 'string' }],
      },
    },
  },
  {
    method: 'GET',
    path: '/v1/admin/overview',
    access: 'admin',
    summary: 'Queues, workers and jobs across every tenant (the admin key only)',
    responses: { 200: ok('Overview', 'AdminOverview') },
  },
  {
    method: 'GET',
    path: QUEUE_BOARD_PATH,
    mount: true,
    access: 'operator',
    summary:
      'Bull Board, read-only: the BullMQ queues and their jobs (its page, files and JSON under this path; the admin key when keys are configured)',
    responses: { 200: { description: 'The page', content: [{ type: 'text/html', schema: 'string' }] } },
  },
];

/**
 * `/v1/jobs/:id` -> a pattern matching `req.path` as Express does: any case, an optional trailing
 * slash; a mount also matches every path under it.
 */
function pathPattern(path: string, mount = false): RegExp {
  const escaped = path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/:\w+/g, '[^/]+');
  return new RegExp(`^${escaped}${mount ? '(/.*)?' : '/?'}$`, 'i');
}

/**
 * The access rule of a request path, from `routes` (path only: Express answers HEAD with the GET
 * route). A path no route matches takes the tenant rule, so a stranger learns nothing about which
 * paths exist.
 */
export function accessRules(routes: readonly RouteSpec[]): (path: string) => RouteAccess {
  const byPath = new Map<string, RouteAccess>();
  const mounts = new Set(routes.filter((r) => r.mount).map((r) => r.path));
  for (const r of routes) {
    const seen = byPath.get(r.path);
    if (seen !== undefined && seen !== r.access) {
      throw new Error(`routes: ${r.path} has two access rules (${seen} and ${r.access}); one path, one rule`);
    }
    byPath.set(r.path, r.access);
  }
  const rules = [...byPath].map(([path, access]) => ({ pattern: pathPattern(path, mounts.has(path)), access }));
  return (path) => rules.find((r) => r.pattern.test(path))?.access ?? 'tenant';
}

export const accessOf = accessRules(ROUTES);

/** The route template (`/v1/jobs/:id`) a request path matches, or null: what metrics label a request with. */
export function routeTemplates(routes: readonly RouteSpec[]): (path: string) => string | null {
  const patterns = routes.map((r) => ({ path: r.path, pattern: pathPattern(r.path, r.mount) }));
  return (path) => patterns.find((p) => p.pattern.test(path))?.path ?? null;
}

const templateOf = routeTemplates(ROUTES);

/**
 * The route template of a request, from its original URL (a mounted router strips its mount path
 * from `req.path`), or null.
 */
export function routeOf(req: { originalUrl: string }): string | null {
  const q = req.originalUrl.indexOf('?');
  return templateOf(q === -1 ? req.originalUrl : req.originalUrl.slice(0, q));
}
