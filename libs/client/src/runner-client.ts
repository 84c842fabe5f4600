/**
 * `RunnerClient`: the REST API of apps/api from TypeScript. Request bodies are validated with the
 * shared schemas of `@relu-lstm/jobs` before they are sent; response types are the shared ones too.
 * Responses are not re-validated (a newer server may add fields), only typed.
 *
 * Live events come from `GET /v1/jobs/:id/events` (Server-Sent Events) parsed here on the fetch body;
 * a dropped connection is resumed with `Last-Event-ID`, so every event is seen exactly once.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  contract as defaultContract,
  ErrorBodySchema,
  IDEMPOTENCY_HEADER,
  isTerminal,
  isValidArtifactName,
  JOB_TYPE_SPECS,
  JobOptionsSchema,
  payloadSchema,
  SweepRequestSchema,
  OpenSessionSchema,
  validate,
  type ArtifactList,
  type CancelResponse,
  type DatasetView,
  type InferPayloadInput,
  type InferResult,
  type InferWaitResponse,
  type JobContract,
  type JobOptionsInput,
  type JobEvent,
  type JobList,
  type JobResult,
  type JobState,
  type JobType,
  type JobView,
  type StoredEvent,
  type SubmitResponse,
  type SweepRequestInput,
  type OpenSessionInput,
  type SessionStepResult,
  type SessionView,
  type SweepSubmitResponse,
  type SweepView,
  type TrainPayloadInput,
  type WorkerHeartbeat,
  type WorkerList,
  RegisterModelSchema,
  type ModelAliasView,
  type ModelList,
  type ModelVersionView,
  type ModelView,
  type RegisterModel,
  MODEL_REF_EXPECTED,
  parseModelRef,
} from '@relu-lstm/jobs';
import type { z } from 'zod';
import {
  JobFailedError,
  PayloadValidationError,
  RunnerApiError,
  RunnerConnectionError,
  WaitTimeoutError,
} from './errors';
import { parseSse, SseParser } from './sse';

export type FetchLike = (input: string | URL, init?: RequestInit) => Promise<Response>;

export interface RunnerClientOptions {
  /** Where the api listens, e.g. `http://127.0.0.1:3000` (a path prefix is kept). */
  baseUrl: string;
  /** Sent as `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** A fetch implementation; default the global one. */
  fetch?: FetchLike;
  /** Longest wait for one response (headers and body; for event streams, headers only). Default 30 s. */
  timeoutMs?: number;
  /** Delay before reconnecting a dropped event stream, unless the server sent `retry:`. Default 1 s. */
  reconnectDelayMs?: number;
  /** Reconnections in a row without a new event before `events()` gives up. Default 10. */
  maxReconnects?: number;
  /**
   * An event stream silent for this long (no event, no keep-alive comment) is taken as dead and
   * reopened. Default 60 s (the api sends a keep-alive every 15 s).
   */
  streamIdleTimeoutMs?: number;
  /** Schemas used for client-side validation; default `contract` (the default limits). */
  contract?: JobContract;
}

export interface RequestOptions {
  signal?: AbortSignal;
}

export interface SubmitTrainOptions extends RequestOptions, JobOptionsInput {
  /** Sent as `Idempotency-Key`: a repeat with the same key returns the same job. */
  idempotencyKey?: string;
}

export interface SubmitInferOptions extends SubmitTrainOptions {
  /** `?wait=true`: the server answers when the job has ended (bounded wait), with its result. */
  wait?: boolean;
}

/**
 * What `submitInfer` returns: `{ id, state, links }`, plus, with `wait` and a job that ended in time,
 * `result` (completed) or `error` (failed, cancelled).
 */
export interface InferSubmission extends SubmitResponse {
  result?: InferResult | null;
  error?: InferWaitResponse['error'];
}

export interface ListOptions extends RequestOptions {
  state?: JobState;
  type?: JobType;
  /** The exact name given at submission. */
  name?: string;
  /** Every one must match. */
  tags?: Record<string, string>;
  /** Created at or after: milliseconds since the epoch, or a Date. */
  since?: number | Date;
  limit?: number;
  cursor?: string;
}

export interface EventsOptions {
  /** Resume after this event id (exclusive); default: replay from the start. */
  lastEventId?: string;
  signal?: AbortSignal;
}

export interface WaitOptions {
  /** Give up (with `WaitTimeoutError`) after this long; the job goes on. Default: no limit. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Polling interval once the event stream is unusable. Default 1 s. */
  pollIntervalMs?: number;
}

export type DatasetUpload = z.input<JobContract['DatasetInput']>;

export interface Health {
  status: 'ok' | 'unavailable';
  redis: 'up' | 'down';
}

/** Query parameters; an array repeats its name (`tag=a:1&tag=b:2`). */
type Query = Record<string, string | number | boolean | readonly string[] | undefined>;

interface SendOptions {
  query?: Query;
  body?: unknown;
  /** Raw body with its content type (CSV upload). */
  rawBody?: { contentType: string; data: string | Uint8Array };
  headers?: Record<string, string | undefined>;
  signal?: AbortSignal;
}

const EVENT_TYPES = new Set(['state', 'metric', 'log']);

export class RunnerClient {
  readonly baseUrl: string;
  private readonly apiKey: string | undefined;
  private readonly fetchImpl: FetchLike;
  private readonly timeoutMs: number;
  private readonly reconnectDelayMs: number;
  private readonly maxReconnects: number;
  private readonly streamIdleTimeoutMs: number;
  private readonly contract: JobContract;

  constructor(options: RunnerClientOptions) {
    const base = new URL(options.baseUrl); // throws on a malformed URL
    if (base.protocol !== 'http:' && base.protocol !== 'https:')
      throw new TypeError(`baseUrl: expected http(s), got ${base.protocol}`);
    this.baseUrl = base.href.endsWith('/') ? base.href : `${base.href}/`;
    this.apiKey = options.apiKey || undefined;
    this.fetchImpl = options.fetch ?? ((input, init) => fetch(input, init));
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.reconnectDelayMs = options.reconnectDelayMs ?? 1_000;
    this.maxReconnects = options.maxReconnects ?? 10;
    this.streamIdleTimeoutMs = options.streamIdleTimeoutMs ?? 60_000;
    this.contract = options.contract ?? defaultContract;
  }

  // ---- jobs -------------------------------------------------------------------------------------

  /** `POST /v1/jobs/train` after validating the payload; throws `PayloadValidationError` naming each bad field. */
  async submitTrain(payload: TrainPayloadInput, options: SubmitTrainOptions = {}): Promise<SubmitResponse> {
    this.checkPayload('train', payload);
    return this.json<SubmitResponse>('POST', 'v1/jobs/train', {
      body: this.submitBody(payload, options),
      headers: { [IDEMPOTENCY_HEADER]: options.idempotencyKey },
      signal: options.signal,
    });
  }

  /** `POST /v1/jobs/infer` (`?wait=true` with `wait`) after validating the payload. */
  async submitInfer(payload: InferPayloadInput, options: SubmitInferOptions = {}): Promise<InferSubmission> {
    this.checkPayload('infer', payload);
    return this.json<InferSubmission>('POST', 'v1/jobs/infer', {
      query: { wait: options.wait ? 'true' : undefined },
      body: this.submitBody(payload, options),
      headers: { [IDEMPOTENCY_HEADER]: options.idempotencyKey },
      signal: options.signal,
    });
  }

  /** `GET /v1/jobs/:id`. */
  get(id: string, options: RequestOptions = {}): Promise<JobView> {
    return this.json<JobView>('GET', `v1/jobs/${seg(id)}`, options);
  }

  /** `GET /v1/jobs`: newest first; pass `nextCursor` back as `cursor` for the next page. */
  list(options: ListOptions = {}): Promise<JobList> {
    const { state, type, name, tags, limit, cursor, signal } = options;
    const since = options.since instanceof Date ? options.since.getTime() : options.since;
    const tag = Object.entries(tags ?? {}).map(([k, v]) => `${k}:${v}`);
    return this.json<JobList>('GET', 'v1/jobs', { query: { state, type, name, tag, since, limit, cursor }, signal });
  }

  /** `DELETE /v1/jobs/:id`: a queued job is cancelled at once, a running one at its next batch. */
  cancel(id: string, options: RequestOptions = {}): Promise<CancelResponse> {
    return this.json<CancelResponse>('DELETE', `v1/jobs/${seg(id)}`, options);
  }

  // ---- sessions ---------------------------------------------------------------------------------

  /** `POST /v1/sessions`: a streaming inference session on a trained model (`modelJobId`, or a registry `model` name). */
  openSession(request: OpenSessionInput, options: RequestOptions = {}): Promise<SessionView> {
    this.check('session', OpenSessionSchema, request);
    return this.json<SessionView>('POST', 'v1/sessions', { body: request, signal: options.signal });
  }

  /**
   * `POST /v1/sessions/:id/step`: feeds `inputs` `[B][T][features]` as step `seq` (0, 1, 2, ...); the
   * answer continues from the previous step's state. Repeating the last `seq` returns its stored answer.
   */
  step(id: string, seq: number, inputs: number[][][], options: RequestOptions = {}): Promise<SessionStepResult> {
    return this.json<SessionStepResult>('POST', `v1/sessions/${seg(id)}/step`, {
      body: { seq, inputs },
      signal: options.signal,
    });
  }

  /** `GET /v1/sessions/:id`: its model and the `seq` of its next step. */
  getSession(id: string, options: RequestOptions = {}): Promise<SessionView> {
    return this.json<SessionView>('GET', `v1/sessions/${seg(id)}`, options);
  }

  /** `DELETE /v1/sessions/:id`. */
  async closeSession(id: string, options: RequestOptions = {}): Promise<void> {
    await this.json<null>('DELETE', `v1/sessions/${seg(id)}`, options);
  }

  // ---- sweeps -----------------------------------------------------------------------------------

  /** `POST /v1/sweeps`: the api checks every trial spec like a train submission (400 names the trial). */
  submitSweep(request: SweepRequestInput, options: RequestOptions = {}): Promise<SweepSubmitResponse> {
    this.check('sweep', SweepRequestSchema, request);
    return this.json<SweepSubmitResponse>('POST', 'v1/sweeps', { body: request, signal: options.signal });
  }

  /** `GET /v1/sweeps/:id`: its state and its trials, ranked best first. */
  getSweep(id: string, options: RequestOptions = {}): Promise<SweepView> {
    return this.json<SweepView>('GET', `v1/sweeps/${seg(id)}`, options);
  }

  /** `DELETE /v1/sweeps/:id`: cancels its queued and running trials. */
  cancelSweep(id: string, options: RequestOptions = {}): Promise<SweepSubmitResponse> {
    return this.json<SweepSubmitResponse>('DELETE', `v1/sweeps/${seg(id)}`, options);
  }

  /** Polls the sweep every `pollMs` (default 1000) until it has ended; `onView` sees each view. */
  async waitForSweep(
    id: string,
    options: { pollMs?: number; signal?: AbortSignal; onView?: (v: SweepView) => void } = {},
  ): Promise<SweepView> {
    for (;;) {
      const view = await this.getSweep(id, { signal: options.signal });
      options.onView?.(view);
      if (view.state !== 'queued' && view.state !== 'running') return view;
      await new Promise((r) => setTimeout(r, options.pollMs ?? 1000));
      options.signal?.throwIfAborted();
    }
  }

  /**
   * The job's events, from the start (or after `lastEventId`), then live, until a terminal state
   * event (`completed`, `failed`, `cancelled`), which is the last one yielded. A dropped connection is
   * reopened with `Last-Event-ID`; 4xx answers (unknown job: 404) throw `RunnerApiError` at once.
   * Breaking out of the loop closes the connection.
   */
  async *events(id: string, options: EventsOptions = {}): AsyncGenerator<StoredEvent, void, undefined> {
    const { signal } = options;
    let lastId = options.lastEventId;
    let delay = this.reconnectDelayMs;
    let failures = 0;
    for (;;) {
      signal?.throwIfAborted();
      const conn = new AbortController();
      const stop = () => conn.abort(signal?.reason);
      signal?.addEventListener('abort', stop, { once: true });
      let problem: unknown;
      try {
        const res = await this.send('GET', `v1/jobs/${seg(id)}/events`, {
          headers: { accept: 'text/event-stream', 'last-event-id': lastId },
          signal: conn.signal,
        });
        if (!res.body) throw new RunnerConnectionError('event stream without a body', false);
        const parser = new SseParser();
        parser.lastEventId = lastId ?? '';
        try {
          const body = idleLimited(res.body, this.streamIdleTimeoutMs, () =>
            conn.abort(new RunnerConnectionError(`event stream silent for ${this.streamIdleTimeoutMs} ms`, true)),
          );
          for await (const msg of parseSse(body, parser)) {
            const event = parseEvent(msg.data);
            if (!event) continue;
            if (msg.id) lastId = msg.id;
            failures = 0;
            yield { id: msg.id, event };
            if (event.type === 'state' && isTerminal(event.state)) return;
          }
          problem = new RunnerConnectionError('event stream ended before the job did', false);
        } finally {
          if (parser.retry !== undefined) delay = parser.retry;
        }
      } catch (e) {
        if (signal?.aborted) throw signal.reason;
        if (e instanceof RunnerApiError && e.status < 500 && e.status !== 429) throw e;
        problem = e;
      } finally {
        signal?.removeEventListener('abort', stop);
        conn.abort(); // closes the connection whatever ended the loop
      }
      failures++;
      if (failures > this.maxReconnects) {
        throw new RunnerConnectionError(
          `event stream of job ${id}: ${failures} connections in a row without an event (${errorText(problem)})`,
          false,
          {
            cause: problem,
          },
        );
      }
      await sleep(delay, undefined, { signal });
    }
  }

  /**
   * Waits for the job to end: its result when `completed`; `JobFailedError` when `failed` or
   * `cancelled`; `WaitTimeoutError` after `timeoutMs`. Follows the event stream, and polls
   * `GET /v1/jobs/:id` when the stream cannot be used.
   */
  async waitForResult<R extends JobResult = JobResult>(id: string, options: WaitOptions = {}): Promise<R> {
    const { timeoutMs, signal, pollIntervalMs = 1_000 } = options;
    const ctrl = new AbortController();
    const onAbort = () => ctrl.abort(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    let timedOut = false;
    const timer =
      timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            ctrl.abort(new Error('timeout'));
          }, timeoutMs);
    let lastState: JobState | null = null;
    try {
      try {
        for await (const { event } of this.events(id, { signal: ctrl.signal })) {
          if (event.type !== 'state') continue;
          lastState = event.state;
          if (event.state === 'completed' && event.result !== undefined) return event.result as R;
          if (isTerminal(event.state)) break;
        }
      } catch (e) {
        if (ctrl.signal.aborted) throw e;
        if (e instanceof RunnerApiError && e.status === 404) throw e;
        // Any other trouble with the stream: fall back to polling.
      }
      for (;;) {
        const view = await this.get(id, { signal: ctrl.signal });
        lastState = view.state;
        if (view.state === 'completed') return view.result as R;
        if (view.state === 'failed' || view.state === 'cancelled')
          throw new JobFailedError(id, view.state, view.error, view);
        await sleep(pollIntervalMs, undefined, { signal: ctrl.signal });
      }
    } catch (e) {
      if (timedOut) throw new WaitTimeoutError(id, timeoutMs ?? 0, lastState);
      if (signal?.aborted) throw signal.reason;
      throw e;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
  }

  // ---- artifacts --------------------------------------------------------------------------------

  /** `GET /v1/jobs/:id/artifacts`. */
  listArtifacts(id: string, options: RequestOptions = {}): Promise<ArtifactList> {
    return this.json<ArtifactList>('GET', `v1/jobs/${seg(id)}/artifacts`, options);
  }

  /** `GET /v1/jobs/:id/artifacts/:name`, whole. */
  async downloadArtifact(id: string, name: string, options: RequestOptions = {}): Promise<Uint8Array> {
    checkName(name);
    return this.withTimeout(options.signal, async (signal) => {
      const res = await this.send('GET', `v1/jobs/${seg(id)}/artifacts/${seg(name)}`, { signal });
      return new Uint8Array(await res.arrayBuffer());
    });
  }

  /**
   * Streams one artifact to `path` (a temporary file renamed at the end, so a partial download never
   * takes its place); creates the parent directory. Returns the bytes written.
   */
  async saveArtifact(
    id: string,
    name: string,
    path: string,
    options: RequestOptions = {},
  ): Promise<{ path: string; bytes: number }> {
    checkName(name);
    const conn = new AbortController();
    const stop = () => conn.abort(options.signal?.reason);
    options.signal?.addEventListener('abort', stop, { once: true });
    const tmp = `${path}.${process.pid}.${Date.now()}.part`;
    try {
      const res = await this.send('GET', `v1/jobs/${seg(id)}/artifacts/${seg(name)}`, { signal: conn.signal });
      await mkdir(dirname(path), { recursive: true });
      let bytes = 0;
      const body = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>);
      body.on('data', (c: Buffer) => (bytes += c.length));
      await pipeline(body, createWriteStream(tmp));
      await rename(tmp, path);
      return { path, bytes };
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    } finally {
      options.signal?.removeEventListener('abort', stop);
      conn.abort();
    }
  }

  /** Saves every artifact of the job under `dir` (as `<dir>/<name>`). */
  async saveArtifacts(
    id: string,
    dir: string,
    options: RequestOptions = {},
  ): Promise<Array<{ path: string; bytes: number }>> {
    const { items } = await this.listArtifacts(id, options);
    const out: Array<{ path: string; bytes: number }> = [];
    for (const a of items) out.push(await this.saveArtifact(id, a.name, join(dir, a.name), options));
    return out;
  }

  // ---- model registry ----------------------------------------------------------------------------

  /** `POST /v1/models`: the train job's model becomes the next version of `name`. */
  registerModel(body: RegisterModel, options: RequestOptions = {}): Promise<ModelVersionView> {
    this.check('model registration', RegisterModelSchema, body);
    return this.json<ModelVersionView>('POST', 'v1/models', { body, signal: options.signal });
  }

  /** `GET /v1/models`: newest first, paged like `list`. */
  listModels(options: RequestOptions & { limit?: number; cursor?: string } = {}): Promise<ModelList> {
    const { limit, cursor, signal } = options;
    return this.json<ModelList>('GET', 'v1/models', { query: { limit, cursor }, signal });
  }

  /** `GET /v1/models/:model`: its versions and aliases. */
  getModel(name: string, options: RequestOptions = {}): Promise<ModelView> {
    return this.json<ModelView>('GET', `v1/models/${seg(name)}`, options);
  }

  /** `GET /v1/models/:model/versions/:version`. */
  getModelVersion(name: string, version: number, options: RequestOptions = {}): Promise<ModelVersionView> {
    return this.json<ModelVersionView>('GET', `v1/models/${seg(name)}/versions/${version}`, options);
  }

  /** One file of a version (`model.safetensors`, `config.json`, `state.json`, `metrics.csv`). */
  async downloadModelFile(
    name: string,
    version: number,
    file: string,
    options: RequestOptions = {},
  ): Promise<Uint8Array> {
    checkName(file);
    return this.withTimeout(options.signal, async (signal) => {
      const res = await this.send('GET', `v1/models/${seg(name)}/versions/${version}/artifacts/${seg(file)}`, {
        signal,
      });
      return new Uint8Array(await res.arrayBuffer());
    });
  }

  /** The version a reference names (`name`, `name@3`, `name@production`), as the api resolves it. */
  async resolveModelVersion(ref: string, options: RequestOptions = {}): Promise<ModelVersionView> {
    const parsed = parseModelRef(ref);
    if (!parsed) throw new Error(`model reference: expected ${MODEL_REF_EXPECTED}, got ${JSON.stringify(ref)}`);
    const { name, selector } = parsed;
    if (selector && 'version' in selector) return this.getModelVersion(name, selector.version, options);
    const model = await this.getModel(name, options);
    const version = selector ? model.aliases[selector.alias] : model.latestVersion;
    const found = model.versions.find((v) => v.version === version);
    if (!found) throw new Error(`model ${name} has no alias ${selector && 'alias' in selector ? selector.alias : ''}`);
    return found;
  }

  /** Downloads every file of a version into `dir`. */
  async saveModelVersion(
    name: string,
    version: number,
    dir: string,
    options: RequestOptions = {},
  ): Promise<Array<{ path: string; bytes: number }>> {
    const v = await this.getModelVersion(name, version, options);
    const out: Array<{ path: string; bytes: number }> = [];
    for (const f of v.files) {
      const bytes = await this.downloadModelFile(name, version, f.name, options);
      const path = join(dir, f.name);
      await mkdir(dirname(path), { recursive: true });
      await writeFile(path, bytes);
      out.push({ path, bytes: bytes.byteLength });
    }
    return out;
  }

  /** `PUT /v1/models/:model/aliases/:alias`: point the alias at `version`. */
  setModelAlias(name: string, alias: string, version: number, options: RequestOptions = {}): Promise<ModelAliasView> {
    return this.json<ModelAliasView>('PUT', `v1/models/${seg(name)}/aliases/${seg(alias)}`, {
      body: { version },
      signal: options.signal,
    });
  }

  async deleteModelAlias(name: string, alias: string, options: RequestOptions = {}): Promise<void> {
    await this.json<null>('DELETE', `v1/models/${seg(name)}/aliases/${seg(alias)}`, options);
  }

  /** Refused (409) while an alias points at the version. */
  async deleteModelVersion(name: string, version: number, options: RequestOptions = {}): Promise<void> {
    await this.json<null>('DELETE', `v1/models/${seg(name)}/versions/${version}`, options);
  }

  // ---- datasets, workers, health ----------------------------------------------------------------

  /** `POST /v1/datasets` with a JSON dataset (validated first); the id goes in `data.datasetId`. */
  async uploadDataset(dataset: DatasetUpload, options: RequestOptions = {}): Promise<DatasetView> {
    this.check('dataset', this.contract.DatasetInput, dataset);
    return this.json<DatasetView>('POST', 'v1/datasets', { body: dataset, signal: options.signal });
  }

  /** `POST /v1/datasets` with a CSV body (the format docs/api.md describes); validated by the server. */
  uploadDatasetCsv(csv: string | Uint8Array, options: RequestOptions & { query?: Query } = {}): Promise<DatasetView> {
    return this.json<DatasetView>('POST', 'v1/datasets', {
      rawBody: { contentType: 'text/csv', data: csv },
      query: options.query,
      signal: options.signal,
    });
  }

  /** `GET /v1/workers`: live workers from their heartbeats. */
  async workers(options: RequestOptions = {}): Promise<WorkerHeartbeat[]> {
    return (await this.json<WorkerList>('GET', 'v1/workers', options)).items;
  }

  /** `GET /health`. A 503 with a health body is returned (status `unavailable`), not thrown. */
  async health(options: RequestOptions = {}): Promise<Health> {
    try {
      return await this.json<Health>('GET', 'health', options);
    } catch (e) {
      if (e instanceof RunnerApiError && e.status === 503) return { status: 'unavailable', redis: 'down' };
      throw e;
    }
  }

  // ---- plumbing ---------------------------------------------------------------------------------

  private check<S extends z.ZodType>(what: string, schema: S, value: unknown): void {
    const r = validate(schema, value);
    if (!r.ok) throw new PayloadValidationError(what, r.issues);
  }

  private checkPayload(type: JobType, value: unknown): void {
    this.check(JOB_TYPE_SPECS[type].label, payloadSchema(type, this.contract), value);
  }

  /** The payload with the job's name, tags and priority beside its fields (job-options.ts), checked first. */
  private submitBody(payload: object, options: JobOptionsInput): Record<string, unknown> {
    const { name, tags, priority } = options;
    const jobOptions = { name, tags, priority };
    this.check('job options', JobOptionsSchema, jobOptions);
    return { ...payload, ...jobOptions };
  }

  url(path: string, query: Query = {}): URL {
    const url = new URL(path, this.baseUrl);
    for (const [k, v] of Object.entries(query)) {
      if (typeof v === 'object') for (const one of v) url.searchParams.append(k, one);
      else if (v !== undefined) url.searchParams.set(k, String(v));
    }
    return url;
  }

  /** Sends and reads a JSON answer, all within `timeoutMs`. */
  private json<T>(method: string, path: string, options: SendOptions = {}): Promise<T> {
    return this.withTimeout(options.signal, async (signal) => {
      const res = await this.send(method, path, { ...options, signal });
      const text = await res.text();
      return (text ? JSON.parse(text) : null) as T;
    });
  }

  /** Runs `fn` with a signal that aborts after `timeoutMs` or when `outer` aborts. */
  private async withTimeout<T>(outer: AbortSignal | undefined, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const signal = outer
      ? AbortSignal.any([outer, AbortSignal.timeout(this.timeoutMs)])
      : AbortSignal.timeout(this.timeoutMs);
    try {
      return await fn(signal);
    } catch (e) {
      if (outer?.aborted) throw outer.reason;
      if (signal.aborted && !(e instanceof RunnerApiError)) {
        throw new RunnerConnectionError(`no complete answer within ${this.timeoutMs} ms`, true, { cause: e });
      }
      throw e;
    }
  }

  /** One request; a non-2xx answer becomes `RunnerApiError`. The response headers must come within `timeoutMs`. */
  private async send(method: string, path: string, options: SendOptions = {}): Promise<Response> {
    const url = this.url(path, options.query);
    const headers: Record<string, string> = { accept: 'application/json' };
    for (const [k, v] of Object.entries(options.headers ?? {})) if (v !== undefined && v !== '') headers[k] = v;
    if (this.apiKey) headers.authorization = `Bearer ${this.apiKey}`;
    let body: string | Uint8Array | undefined;
    if (options.rawBody) {
      headers['content-type'] = options.rawBody.contentType;
      body = options.rawBody.data;
    } else if (options.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(options.body);
    }
    const request = `${method} ${url.pathname}`;
    const headersTimeout = new AbortController();
    const timer = setTimeout(() => headersTimeout.abort(new Error('timeout')), this.timeoutMs);
    const signal = options.signal ? AbortSignal.any([options.signal, headersTimeout.signal]) : headersTimeout.signal;
    let res: Response;
    try {
      res = await this.fetchImpl(url, { method, headers, body, signal });
    } catch (e) {
      if (options.signal?.aborted) throw options.signal.reason;
      const timedOut = headersTimeout.signal.aborted;
      throw new RunnerConnectionError(
        `${request}: ${timedOut ? `no answer within ${this.timeoutMs} ms` : errorText(e)}`,
        timedOut,
        { cause: e },
      );
    } finally {
      clearTimeout(timer);
    }
    if (!res.ok) throw await toApiError(res, request);
    return res;
  }
}

/** Maps a non-2xx response to `RunnerApiError`, using the api's `{ error: { code, message, issues } }` body when there is one. */
async function toApiError(res: Response, request: string): Promise<RunnerApiError> {
  let text = '';
  try {
    text = await res.text();
  } catch {
    /* body lost: status only */
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  const retryAfterMs = parseRetryAfter(res.headers.get('retry-after'));
  const parsed = ErrorBodySchema.safeParse(json);
  if (parsed.success) {
    const { code, message, issues } = parsed.data.error;
    return new RunnerApiError(res.status, code, message, issues ?? [], request, retryAfterMs);
  }
  // A body of another shape (a proxy's page, an older server): keep what can be read of it.
  const loose = (json as { error?: { code?: unknown; message?: unknown }; message?: unknown } | undefined) ?? {};
  const message =
    typeof loose.error?.message === 'string'
      ? loose.error.message
      : typeof loose.message === 'string'
        ? loose.message
        : text.slice(0, 200) || res.statusText;
  return new RunnerApiError(res.status, `http_${res.status}`, message, [], request, retryAfterMs);
}

/** `Retry-After`: delay-seconds or an HTTP-date -> milliseconds from now (>= 0); null if absent or unreadable. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | null {
  if (!value) return null;
  if (/^\s*\d+\s*$/.test(value)) return Number(value) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

/**
 * The chunks of `body`; `onIdle` is called (it should abort the request) when the network is silent
 * for `ms`. Only time spent waiting for the next chunk counts, not time the consumer spends on one.
 */
async function* idleLimited(
  body: AsyncIterable<Uint8Array>,
  ms: number,
  onIdle: () => void,
): AsyncGenerator<Uint8Array, void, undefined> {
  let timer: NodeJS.Timeout | undefined = setTimeout(onIdle, ms);
  try {
    for await (const chunk of body) {
      clearTimeout(timer);
      yield chunk;
      timer = setTimeout(onIdle, ms);
    }
  } finally {
    clearTimeout(timer);
  }
}

function parseEvent(data: string): JobEvent | null {
  if (!data) return null;
  try {
    const v = JSON.parse(data) as { type?: unknown };
    return v && typeof v === 'object' && typeof v.type === 'string' && EVENT_TYPES.has(v.type) ? (v as JobEvent) : null;
  } catch {
    return null;
  }
}

/** One URL path segment. */
function seg(s: string): string {
  if (!s) throw new TypeError('expected a non-empty id');
  return encodeURIComponent(s);
}

function checkName(name: string): void {
  if (!isValidArtifactName(name))
    throw new TypeError(`artifact name: expected one path segment like model.safetensors, got ${JSON.stringify(name)}`);
}

function errorText(e: unknown): string {
  // Duck-typed: errors from fetch may come from another realm (instanceof Error fails there).
  const msg = (x: unknown): string | undefined =>
    x && typeof x === 'object' && typeof (x as { message?: unknown }).message === 'string'
      ? (x as { message: string }).message
      : undefined;
  const m = msg(e);
  if (m === undefined) return String(e);
  const cause = (e as { cause?: unknown }).cause;
  const cm = msg(cause);
  const code = cause && typeof cause === 'object' ? (cause as { code?: unknown }).code : undefined;
  return cm ? `${m} (${typeof code === 'string' && !cm.includes(code) ? `${code}: ` : ''}${cm})` : m;
}
