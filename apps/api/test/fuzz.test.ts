/**
 * Fuzzing the HTTP api: the compiled api and a real worker (both real processes, real Redis), and
 * thousands of hostile requests from a seeded generator: malformed JSON, random JSON values,
 * mutations of valid payloads (wrong types, huge numbers, NaN-ish strings, deep nesting, big arrays,
 * unicode, `__proto__` / `constructor` keys), wrong content types and encodings, random paths,
 * methods, ids, query strings and headers.
 *
 * Promises checked: no 5xx and no dropped connection; every error is the JSON error body; an invalid
 * submission is never accepted; nothing reaches the queues (job counts, tenant index and job keys
 * unchanged); the worker and the api are still alive and still serve a valid request afterwards.
 *
 * Then the same generator puts hostile job data straight on a queue (what a buggy or malicious
 * producer could do): every such job fails with `invalid_payload` in one attempt and the worker
 * keeps serving.
 *
 * FUZZ_SEED reproduces a run (the seed is printed); FUZZ_CASES sets the number of requests (3000).
 */
import { Queue } from 'bullmq';
import {
  CANONICAL_TRAIN_EXAMPLE,
  ErrorBodySchema,
  validateJobData,
  QUEUE_NAMES,
  contract,
  decodeJobError,
  type QueueName,
} from '@relu-lstm/jobs';
import { Harness, type WorkerProcess } from '../../worker/test/harness';
import { http, startApi, type ApiProcess, type HttpResult } from './harness';

const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);
const CASES = Number(process.env.FUZZ_CASES ?? 3000);
const CONCURRENCY = 8;
const REQUEST_TIMEOUT_MS = 15_000;

jest.setTimeout(Math.max(240_000, CASES * 100));

// ---------------------------------------------------------------------------------------------
// A seeded generator (mulberry32): the same seed gives the same requests.

class Rand {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }
}

const WEIRD_NUMBERS = [
  0,
  -0,
  1,
  -1,
  0.5,
  1e308,
  -1e308,
  5e-324,
  2 ** 53 + 2,
  -(2 ** 31),
  2 ** 32,
  1e21,
  123456789012,
  3.14159,
  65537,
  100001,
];
const WEIRD_STRINGS = [
  '',
  ' ',
  'NaN',
  'Infinity',
  '-Infinity',
  '1e999',
  'null',
  'undefined',
  'true',
  '0x10',
  '1,5',
  '١٢٣',
  '__proto__',
  'constructor',
  'prototype',
  '../../etc/passwd',
  '%00',
  '\u0000',
  '\u202e\u0644\u0627',
  '😀🚀',
  'ｆｕｌｌｗｉｄｔｈ',
  '<script>alert(1)</script>',
  "' OR 1=1 --",
  '${jndi:ldap://x}',
  'relu',
  'adam',
  'any',
  'gpu',
  'x'.repeat(10_000),
  '\ud800',
  'e\u0301',
];

function randomValue(r: Rand, depth = 0): unknown {
  const k = r.int(depth > 3 ? 4 : 7);
  switch (k) {
    case 0:
      return null;
    case 1:
      return r.chance(0.5);
    case 2:
      return r.chance(0.5) ? r.pick(WEIRD_NUMBERS) : (r.next() - 0.5) * 10 ** r.int(12);
    case 3:
      return r.pick(WEIRD_STRINGS);
    case 4:
    case 5:
      return Array.from({ length: r.int(5) }, () => randomValue(r, depth + 1));
    default: {
      const o: Record<string, unknown> = {};
      for (let i = 0; i < r.int(5); i++) {
        Object.defineProperty(
          o,
          r.pick([...WEIRD_STRINGS.slice(0, 20), 'model', 'data', 'training', 'inputs', 'x', 'y']),
          { value: randomValue(r, depth + 1), enumerable: true, configurable: true, writable: true },
        );
      }
      return o;
    }
  }
}

/** `[[[...[v]...]]]`, `depth` levels deep, as JSON text. */
const deepJson = (depth: number, open = '[', close = ']', leaf = '1') =>
  open.repeat(depth) + leaf + close.repeat(depth);

// ---------------------------------------------------------------------------------------------
// Valid payloads to mutate.

const H = 4;
const filled = (rows: number, cols: number) =>
  Array.from({ length: rows }, (_, i) => Array.from({ length: cols }, (_, j) => 0.05 * ((i + j) % 3)));
const VALID_INFER = {
  model: {
    config: { inputSize: 1, hiddenSize: H, outputSize: 1 },
    stateDict: {
      weight_ih_l0: filled(4 * H, 1),
      weight_hh_l0: filled(4 * H, H),
      bias_ih_l0: Array(4 * H).fill(0),
      bias_hh_l0: Array(4 * H).fill(0),
      'head.weight': filled(1, H),
      'head.bias': [0],
    },
  },
  inputs: [[[0.1], [0.2], [0.3]]],
};
const VALID_TRAIN = JSON.parse(JSON.stringify(CANONICAL_TRAIN_EXAMPLE));
const VALID_DATASET = {
  x: [
    [[0.1], [0.2]],
    [[0.3], [0.4]],
  ],
  y: [
    [[0.2], [0.3]],
    [[0.4], [0.5]],
  ],
};

type Route = 'train' | 'infer' | 'dataset';
const VALID: Record<Route, unknown> = { train: VALID_TRAIN, infer: VALID_INFER, dataset: VALID_DATASET };
const SCHEMA = { train: contract.TrainPayload, infer: contract.InferPayload, dataset: contract.DatasetInput };

/** Paths of every node of a JSON value (objects and arrays, first few items only). */
function nodePaths(
  v: unknown,
  path: Array<string | number> = [],
  out: Array<Array<string | number>> = [],
): Array<Array<string | number>> {
  out.push(path);
  if (Array.isArray(v)) v.slice(0, 3).forEach((x, i) => nodePaths(x, [...path, i], out));
  else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) nodePaths(x, [...path, k], out);
  return out;
}

function setAt(root: unknown, path: Array<string | number>, value: unknown, remove = false): unknown {
  if (path.length === 0) return value;
  const copy = JSON.parse(JSON.stringify(root));
  let cur = copy;
  for (const p of path.slice(0, -1)) cur = cur[p];
  // A key under a scalar goes on the root instead.
  if (cur === null || typeof cur !== 'object') cur = copy;
  const last = path[path.length - 1];
  if (remove) {
    if (Array.isArray(cur)) cur.splice(Number(last), 1);
    else delete cur[last];
  } else {
    Object.defineProperty(cur, last, { value, enumerable: true, configurable: true, writable: true });
  }
  return copy;
}

/** A mutation of a valid body, as JSON text. */
function mutate(r: Rand, route: Route): { text: string; what: string } {
  const base = VALID[route];
  const paths = nodePaths(base);
  const path = r.pick(paths);
  const at = path.join('.') || '(root)';
  switch (r.int(10)) {
    case 0:
      return { text: JSON.stringify(setAt(base, path, null, true)), what: `remove ${at}` };
    case 1:
      return { text: JSON.stringify(setAt(base, path, r.pick(WEIRD_NUMBERS))), what: `number at ${at}` };
    case 2:
      return { text: JSON.stringify(setAt(base, path, r.pick(WEIRD_STRINGS))), what: `string at ${at}` };
    case 3: {
      // A marker replaced by raw text: deep nesting where the schema wants something else.
      const depth = r.pick([50, 1000, 20_000]);
      return {
        text: JSON.stringify(setAt(base, path, '@@DEEP@@')).replace(
          '"@@DEEP@@"',
          deepJson(depth, r.chance(0.5) ? '[' : '{"a":', r.chance(0.5) ? ']' : '}'),
        ),
        what: `nesting ${depth} at ${at}`,
      };
    }
    case 4: {
      // A big array: within the body limit (BODY_LIMIT 1mb below) or just over it (413).
      const n = r.pick([10_000, 50_000, 100_000, 300_000]);
      return {
        text: JSON.stringify(setAt(base, path, '@@BIG@@')).replace('"@@BIG@@"', `[${Array(n).fill('0.5').join(',')}]`),
        what: `array of ${n} at ${at}`,
      };
    }
    case 5: {
      const key = r.pick(['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf']);
      const v = key === 'constructor' ? { prototype: { polluted: true } } : { polluted: true, isAdmin: true };
      const parent =
        path.length && typeof getAt(base, path) === 'object' && !Array.isArray(getAt(base, path)) ? path : [];
      const copy = setAt(base, [...parent, '@@KEY@@'], v);
      return {
        text: JSON.stringify(copy).replace('"@@KEY@@"', JSON.stringify(key)),
        what: `${key} key in ${parent.join('.') || '(root)'}`,
      };
    }
    case 6:
      return { text: JSON.stringify(setAt(base, path, randomValue(r))), what: `random value at ${at}` };
    case 7: {
      const unicode = r.pick(['\u00e9', '\u4e2d\u6587', '😀', '\u200b', '\u0000', '\ufeff']);
      const copy = setAt(base, [...path.filter((p) => typeof p === 'string').slice(0, 1), `k${unicode}`], 1);
      return { text: JSON.stringify(copy), what: `unicode key under ${at}` };
    }
    case 8:
      // Numbers JSON cannot carry, spelled out.
      return {
        text: JSON.stringify(setAt(base, path, '@@NUM@@')).replace(
          '"@@NUM@@"',
          r.pick(['NaN', 'Infinity', '-Infinity', '1e400', '-1e400', '0x1F', '01', '.5', '+1', '1_000']),
        ),
        what: `bare non-JSON number at ${at}`,
      };
    default:
      return { text: JSON.stringify(setAt(base, path, r.chance(0.5) ? [] : {})), what: `empty container at ${at}` };
  }
}

function getAt(root: unknown, path: Array<string | number>): unknown {
  let cur = root as Record<string | number, unknown>;
  for (const p of path) cur = cur?.[p] as Record<string | number, unknown>;
  return cur;
}

/** Malformed JSON text. */
function malformed(r: Rand): { text: string | Buffer; what: string } {
  const valid = JSON.stringify(r.pick([VALID_TRAIN, VALID_INFER, VALID_DATASET]));
  switch (r.int(8)) {
    case 0: {
      const cut = 1 + r.int(valid.length - 1);
      return { text: valid.slice(0, cut), what: `truncated at ${cut}` };
    }
    case 1: {
      const i = r.int(valid.length);
      const ch = r.pick(['{', '}', '[', ']', ',', ':', '"', '\\', 'x', '\u0000']);
      return { text: valid.slice(0, i) + ch + valid.slice(i + 1), what: `char ${JSON.stringify(ch)} at ${i}` };
    }
    case 2:
      return {
        text: r.pick([
          '{"a":1,}',
          '[1,2,]',
          "{'a':1}",
          '{a:1}',
          'NaN',
          'undefined',
          '{"a":1}{"b":2}',
          '\ufeff{}',
          '//c\n{}',
          '{"a":"\\x41"}',
          '"\\ud800"',
          '',
        ]),
        what: 'classic bad JSON',
      };
    case 3:
      return { text: Buffer.from(Array.from({ length: 1 + r.int(200) }, () => r.int(256))), what: 'random bytes' };
    case 4:
      return {
        text: r.pick(['null', 'true', 'false', '0', '-1', '"text"', '[]', '{}', '[null]', '1e999']),
        what: 'JSON scalar or empty',
      };
    case 5:
      return { text: deepJson(r.pick([100, 5000, 100_000])), what: 'deep array' };
    case 6:
      return { text: deepJson(r.pick([100, 5000, 100_000]), '{"a":', '}'), what: 'deep object' };
    default:
      return { text: JSON.stringify(randomValue(r)), what: 'random JSON value' };
  }
}

// ---------------------------------------------------------------------------------------------

interface Case {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string | Buffer;
  what: string;
  /** A submission that must not be accepted (its body is invalid). */
  submit?: Route;
}

const CONTENT_TYPES = [
  'application/json',
  'application/json; charset=utf-8',
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=xyz',
  'application/json; charset=utf-16',
  'application/json; charset=latin1',
  'text/csv',
  'application/xml',
  ';;;',
  'application/*',
  'APPLICATION/JSON',
];
const uuidLike = (r: Rand) =>
  [8, 4, 4, 4, 12].map((n) => Array.from({ length: n }, () => '0123456789abcdef'[r.int(16)]).join('')).join('-');
function randomId(r: Rand): string {
  return r.pick([
    uuidLike(r),
    '00000000-0000-4000-8000-000000000000',
    '..',
    '..%2F..%2Fetc%2Fpasswd',
    '%00',
    'a'.repeat(5000),
    encodeURIComponent('😀'),
    '%E0%A4%A',
    '%',
    '__proto__',
    'constructor',
    '-1',
    'null',
    encodeURIComponent(' '),
    'job:1',
    encodeURIComponent('<x>'),
    'x'.repeat(129),
  ]);
}
function randomHeaders(r: Rand): Record<string, string> {
  const h: Record<string, string> = {};
  if (r.chance(0.15)) h['idempotency-key'] = r.pick(['k', ' ', 'x'.repeat(300), 'ünïcødé', 'a b', '\t', uuidLike(r)]);
  if (r.chance(0.1)) h['last-event-id'] = r.pick(['0', 'abc', '1-1', '99999999999999999999999-1', '-1', '']);
  if (r.chance(0.1)) h.accept = r.pick(['text/event-stream', 'application/xml', '*/*', 'garbage']);
  if (r.chance(0.05)) h['content-encoding'] = r.pick(['gzip', 'br', 'deflate', 'identity', 'x-unknown']);
  if (r.chance(0.05)) h.authorization = r.pick(['Bearer x', 'Basic Og==', 'x'.repeat(2000)]);
  return h;
}
function randomQuery(r: Rand): string {
  if (!r.chance(0.3)) return '';
  const parts = Array.from(
    { length: 1 + r.int(3) },
    () =>
      `${r.pick(['state', 'limit', 'cursor', 'wait', 'after', 'description', 'x', '__proto__', 'state[]', 'limit[a]'])}=${encodeURIComponent(String(r.pick([...WEIRD_STRINGS.slice(0, 25), '1', '0', '-5', '1e9', 'completed', 'true', 'MTIzOmFi'])))}`,
  );
  return `?${parts.join('&')}`;
}

function makeCase(r: Rand): Case {
  const headers = randomHeaders(r);
  const kind = r.int(10);
  // Submissions (train, infer, dataset) with invalid bodies.
  if (kind <= 4) {
    const route: Route = r.pick(['train', 'train', 'infer', 'infer', 'dataset']);
    const path =
      route === 'dataset'
        ? '/v1/datasets'
        : `/v1/jobs/${route}${route === 'infer' && r.chance(0.3) ? '?wait=true' : ''}`;
    const m = r.chance(0.6) ? mutate(r, route) : malformed(r);
    const ct = r.chance(0.75) ? 'application/json' : r.pick(CONTENT_TYPES);
    if (!r.chance(0.05)) headers['content-type'] = ct;
    return {
      method: 'POST',
      path,
      headers,
      body: m.text,
      what: `POST ${route}: ${m.what} (${headers['content-type'] ?? 'no content-type'})`,
      submit: route,
    };
  }
  // Reads and cancels with random ids, queries and headers.
  if (kind <= 7) {
    const id = randomId(r);
    const path = r.pick([
      `/v1/jobs/${id}`,
      `/v1/jobs/${id}/artifacts`,
      `/v1/jobs/${id}/artifacts/${randomId(r)}`,
      `/v1/jobs/${id}/events`,
      `/v1/datasets/${id}`,
      '/v1/jobs',
      '/v1/workers',
      '/health',
      '/docs/openapi.json',
    ]);
    const method = path.startsWith('/v1/jobs/') && r.chance(0.3) ? 'DELETE' : 'GET';
    return { method, path: path + randomQuery(r), headers, what: `${method} ${path.slice(0, 80)}` };
  }
  // Anything: random methods on random or known paths, with or without a body.
  const method = r.pick(['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD']);
  const path = r.pick([
    '/',
    '/v1',
    '/v1/jobs/train',
    '/v1/jobs/infer',
    '/v1/jobs',
    '/v1/datasets',
    '/v2/jobs',
    `/${randomId(r)}`,
    '/v1/jobs/train/extra',
    '//v1//jobs',
    '/v1/jobs/%2e%2e/health',
  ]);
  const body = r.chance(0.5) ? JSON.stringify(randomValue(r)) : undefined;
  if (body !== undefined) headers['content-type'] = r.pick(CONTENT_TYPES);
  const submit =
    method === 'POST' && ['/v1/jobs/train', '/v1/jobs/infer', '/v1/datasets'].includes(path)
      ? path.endsWith('train')
        ? 'train'
        : path.endsWith('infer')
          ? 'infer'
          : 'dataset'
      : undefined;
  return {
    method,
    path: path + randomQuery(r),
    headers,
    body,
    what: `${method} ${path.slice(0, 80)} with ${body === undefined ? 'no body' : 'a random body'}`,
    submit: submit as Route | undefined,
  };
}

/** Whether the body would pass the schema (such cases are not sent to a submit route). */
function locallyValid(c: Case): boolean {
  if (!c.submit || c.body === undefined) return false;
  const ct = (c.headers['content-type'] ?? '').toLowerCase();
  if (!ct.startsWith('application/json') && !(c.submit === 'dataset' && ct.startsWith('text/csv'))) return false;
  if (ct.startsWith('text/csv')) return true; // a CSV body might be a valid dataset: not sent
  try {
    return SCHEMA[c.submit].safeParse(JSON.parse(c.body.toString())).success;
  } catch {
    return false;
  }
}

/** One request with the path sent exactly as given (no URL normalisation), no keep-alive. */
function rawRequest(base: string, c: Case, timeoutMs: number): Promise<HttpResult> {
  return http(base, c.method, c.path, { raw: c.body, headers: c.headers, rawPath: true, timeoutMs });
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p,
    new Promise<T>((_, rej) => (timer = setTimeout(() => rej(new Error(`no answer within ${ms} ms: ${what}`)), ms))),
  ]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------------------------------------

let h: Harness;
let worker: WorkerProcess;
let api: ApiProcess;
const queues = new Map<QueueName, Queue>();

beforeAll(async () => {
  h = new Harness({ RELU_LSTM_BACKEND: 'cpu' });
  worker = await h.startReadyWorker();
  // Uploads run concurrently here: the per-process cap (its 503) is the hostile test's subject.
  api = await startApi({
    QUEUE_PREFIX: h.prefix,
    ARTIFACT_DIR: h.artifactDir,
    DATASET_DIR: h.datasetDir,
    BODY_LIMIT: '1mb',
    DATASET_BODY_LIMIT: '1mb',
    MAX_DATASET_UPLOADS: '1000',
  });
  for (const q of QUEUE_NAMES) queues.set(q, h.queue(q));
});

afterAll(async () => {
  await api?.stop();
  await h?.close();
});

/** Everything a submission would leave behind. */
async function footprint() {
  const counts: Record<string, number> = {};
  for (const [name, q] of queues) {
    const c = await q.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'completed', 'failed');
    counts[name] = Object.values(c).reduce((a, b) => a + b, 0);
  }
  let jobKeys = 0;
  let cursor = '0';
  do {
    const [next, found] = await h.redis.scan(cursor, 'MATCH', `${h.prefix}:job*`, 'COUNT', 1000);
    jobKeys += found.length;
    cursor = next;
  } while (cursor !== '0');
  const datasets = await h.redis.zcard(h.keys.datasetIndex('default'));
  return { counts, jobKeys, datasets };
}

it(`answers ${CASES} hostile requests without a 5xx, with JSON errors, and nothing reaches the queues`, async () => {
  console.log(`fuzz seed ${SEED} (rerun with FUZZ_SEED=${SEED})`);
  const before = await footprint();
  const r = new Rand(SEED);
  const cases: Case[] = [];
  let skippedValid = 0;
  while (cases.length < CASES) {
    const c = makeCase(r);
    if (locallyValid(c)) {
      skippedValid++;
      continue;
    }
    cases.push(c);
  }

  const statuses = new Map<number, number>();
  const failures: string[] = [];
  let datasetsCreated = 0;
  let bytesSent = 0;
  const started = Date.now();
  let next = 0;
  const runOne = async (i: number) => {
    const c = cases[i];
    bytesSent += c.body ? Buffer.byteLength(c.body) : 0;
    let res: HttpResult;
    try {
      res = await withTimeout(rawRequest(api.url, c, REQUEST_TIMEOUT_MS), REQUEST_TIMEOUT_MS + 1000, c.what);
    } catch (e) {
      failures.push(`#${i} ${c.what}: ${(e as Error).message}`);
      return;
    }
    statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
    if (res.status >= 500) failures.push(`#${i} ${c.what}: ${res.status} ${res.text.slice(0, 200)}`);
    if (res.status >= 400 && c.method !== 'HEAD' && !ErrorBodySchema.safeParse(res.json).success) {
      failures.push(`#${i} ${c.what}: ${res.status} without the JSON error body: ${res.text.slice(0, 200)}`);
    }
    if (c.submit && res.status < 300 && c.method === 'POST') {
      // A random CSV or body that turned out valid for a dataset is harmless but counted.
      if (c.submit === 'dataset' && res.status === 201) datasetsCreated++;
      else
        failures.push(`#${i} ${c.what}: an invalid submission was accepted (${res.status}) ${res.text.slice(0, 200)}`);
    }
  };
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < cases.length) await runOne(next++);
    }),
  );
  const seconds = (Date.now() - started) / 1000;
  const after = await footprint();
  const fivexx = [...statuses].filter(([s]) => s >= 500).reduce((a, [, n]) => a + n, 0);
  console.log(
    [
      `fuzz: ${cases.length} requests in ${seconds.toFixed(1)} s (${(cases.length / seconds).toFixed(0)}/s, ${(bytesSent / 1024 / 1024).toFixed(1)} MiB of bodies; ${skippedValid} valid mutations not sent)`,
      `  statuses: ${JSON.stringify(Object.fromEntries([...statuses].sort(([a], [b]) => a - b)))}`,
      `  5xx: ${fivexx}; failures: ${failures.length}; datasets created by valid random bodies: ${datasetsCreated}`,
      `  queue job counts before ${JSON.stringify(before.counts)}, after ${JSON.stringify(after.counts)}; job keys ${before.jobKeys} -> ${after.jobKeys}`,
      `  worker alive: ${worker.proc.exitCode === null}; api alive: ${api.child.exitCode === null}`,
    ].join('\n'),
  );
  expect(failures.slice(0, 20)).toEqual([]);
  expect(fivexx).toBe(0);
  expect(after.counts).toEqual(before.counts);
  expect(after.jobKeys).toBe(before.jobKeys);
  expect(after.datasets).toBe(before.datasets + datasetsCreated);
  expect(worker.proc.exitCode).toBeNull();
  expect(api.child.exitCode).toBeNull();
  expect(worker.output()).not.toMatch(/FATAL|Unhandled|uncaught/i);

  // Both still serve: a valid inference goes through the queue and the worker.
  const ok = await http(api.url, 'POST', '/v1/jobs/infer?wait=true', { body: VALID_INFER });
  expect(ok.status).toBe(200);
  expect(ok.json.state).toBe('completed');
  expect(ok.json.result.outputs).toHaveLength(1);
});

it('fails hostile job data put straight on the queue with invalid_payload, and the worker keeps serving', async () => {
  const r = new Rand(SEED + 1);
  const ids: string[] = [];
  const whats = new Map<string, string>();
  let skipped = 0;
  while (ids.length < 150) {
    const type = r.pick(['train', 'infer'] as const);
    const m = mutate(r, type);
    let payload: unknown;
    try {
      payload = JSON.parse(m.text);
    } catch {
      skipped++; // bare NaN and the like cannot travel as job data
      continue;
    }
    const envelope = r.int(6);
    const limits = r.chance(0.9) ? contract.limits : randomValue(r);
    const data =
      envelope === 0
        ? { type: r.pick(['train', 'infer', 'other', '', 7]), tenant: 'default', limits, payload }
        : envelope === 1
          ? { type, tenant: r.pick(['', '../x', 'a'.repeat(300), 5, null]), limits, payload }
          : envelope === 2
            ? randomValue(r)
            : { type, tenant: 'default', limits, payload };
    if (validateJobData(data).ok) {
      skipped++;
      continue;
    }
    const name = r.chance(0.9) ? type : r.pick(['train', 'infer', 'x']);
    let id: string;
    try {
      id = await h.addRaw('any', name, data);
    } catch (e) {
      // A producer cannot even serialise it (e.g. JSON.stringify of 20 000 nested arrays overflows).
      if (!(e instanceof RangeError)) throw e;
      skipped++;
      continue;
    }
    ids.push(id);
    whats.set(id, `${name}: ${m.what}, envelope ${envelope}`);
  }
  const started = Date.now();
  const q = h.queue('any');
  const wrong: string[] = [];
  for (const id of ids) {
    let job = await q.getJob(id);
    while (job && !job.finishedOn && Date.now() - started < 120_000) {
      await new Promise((res) => setTimeout(res, 50));
      job = await q.getJob(id);
    }
    const code = decodeJobError(job?.failedReason).code;
    if (!job?.finishedOn || code !== 'invalid_payload' || job.attemptsMade !== 1) {
      wrong.push(`${whats.get(id)}: finished ${Boolean(job?.finishedOn)}, code ${code}, attempts ${job?.attemptsMade}`);
    }
  }
  console.log(
    `queue fuzz: ${ids.length} hostile jobs (${skipped} valid or unsendable skipped) failed in ${((Date.now() - started) / 1000).toFixed(1)} s; wrong outcomes: ${wrong.length}; worker alive: ${worker.proc.exitCode === null}`,
  );
  expect(wrong.slice(0, 10)).toEqual([]);
  expect(worker.proc.exitCode).toBeNull();
  const ok = await http(api.url, 'POST', '/v1/jobs/infer?wait=true', { body: VALID_INFER });
  expect(ok.status).toBe(200);
  expect(ok.json.state).toBe('completed');
});
