/**
 * The page's only way to the api: fetch with the key as a bearer token (never in a URL), errors as
 * the api words them, and the event stream read from a fetch body (EventSource cannot send headers).
 */
import type { JobEvent, ValidationIssue } from '@relu-lstm/jobs';
import { SseParser } from '../../../libs/client/src/sse';
import { isTerminal } from './contract';

const KEY_NAME = 'relu-lstm.apiKey';

/** The key, from this tab (sessionStorage) or, if the user chose to remember it, this browser (localStorage). */
export function apiKey(): string | null {
  return sessionStorage.getItem(KEY_NAME) ?? localStorage.getItem(KEY_NAME);
}

export function setApiKey(key: string | null, remember = false): void {
  sessionStorage.removeItem(KEY_NAME);
  localStorage.removeItem(KEY_NAME);
  if (key) (remember ? localStorage : sessionStorage).setItem(KEY_NAME, key);
}

/** An error answer of the api: `{ error: { code, message, issues? } }`, or what came instead. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly issues: ValidationIssue[] = [],
  ) {
    super(message);
  }
}

function authHeaders(extra: Record<string, string> = {}): Record<string, string> {
  const key = apiKey();
  return key ? { ...extra, authorization: `Bearer ${key}` } : extra;
}

async function errorOf(res: Response): Promise<ApiError> {
  const text = await res.text();
  try {
    const body = JSON.parse(text) as { error?: { code?: string; message?: string; issues?: ValidationIssue[] } };
    if (body.error?.message) {
      return new ApiError(res.status, body.error.code ?? 'error', body.error.message, body.error.issues ?? []);
    }
  } catch {
    // not JSON: shown as it came
  }
  return new ApiError(res.status, `http_${res.status}`, text.slice(0, 500) || res.statusText);
}

/** Called when the api answers 401: the page asks for a key. */
let onUnauthorized: (e: ApiError) => void = () => {};
export const whenUnauthorized = (fn: (e: ApiError) => void): void => {
  onUnauthorized = fn;
};

export async function request(
  path: string,
  init: { method?: string; body?: unknown; signal?: AbortSignal } = {},
): Promise<Response> {
  const res = await fetch(path, {
    method: init.method ?? 'GET',
    headers: authHeaders(init.body === undefined ? {} : { 'content-type': 'application/json' }),
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
    signal: init.signal,
  });
  if (res.ok) return res;
  const err = await errorOf(res);
  if (res.status === 401) onUnauthorized(err);
  throw err;
}

export async function getJson<T>(path: string, init: { method?: string; body?: unknown } = {}): Promise<T> {
  return (await (await request(path, init)).json()) as T;
}

/** `code: message`, then one line per issue: `path: message (expected ..., received ...)`. */
export function errorText(e: unknown): string {
  if (!(e instanceof ApiError)) return e instanceof Error ? e.message : String(e);
  const lines = [`${e.status} ${e.code}: ${e.message}`];
  for (const i of e.issues) {
    lines.push(`${i.path || '(body)'}: ${i.message} (expected ${i.expected}, received ${i.received})`);
  }
  return lines.join('\n');
}

/** Saves an artifact: fetched with the key, handed to the browser as a blob (the key stays out of URLs). */
export async function download(url: string, name: string): Promise<void> {
  const blob = await (await request(url)).blob();
  const href = URL.createObjectURL(blob);
  const a = Object.assign(document.createElement('a'), { href, download: name });
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(href), 10_000);
}

export interface StreamedEvent {
  id: string;
  event: JobEvent;
}

/**
 * Reads a job's (or a sweep's) events from the start until the terminal state or `signal` aborts;
 * after a dropped connection it resumes with Last-Event-ID (the api sends the events after it), as
 * EventSource would. `path`: the resource, `/v1/jobs/<id>` or `/v1/sweeps/<id>`.
 */
export async function streamEvents(
  path: string,
  onEvent: (e: StreamedEvent) => void,
  signal: AbortSignal,
): Promise<void> {
  let lastId = '';
  let retryMs = 2000;
  for (;;) {
    const parser = new SseParser();
    parser.lastEventId = lastId;
    let ended = false;
    try {
      const res = await fetch(`${path}/events`, {
        headers: authHeaders({ accept: 'text/event-stream', ...(lastId ? { 'last-event-id': lastId } : {}) }),
        signal,
      });
      if (!res.ok) throw await errorOf(res);
      const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        for (const m of parser.push(value)) {
          const event = JSON.parse(m.data) as JobEvent;
          onEvent({ id: m.id, event });
          if (event.type === 'state' && isTerminal(event.state)) ended = true;
        }
      }
    } catch (e) {
      if (signal.aborted || e instanceof ApiError) throw e;
    }
    if (ended || signal.aborted) return;
    lastId = parser.lastEventId;
    retryMs = parser.retry ?? retryMs;
    await new Promise((r) => setTimeout(r, retryMs));
  }
}
