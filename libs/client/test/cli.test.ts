/**
 * The relu-lstm CLI run in-process (runCli) against a real HTTP test server: submit with --watch on a
 * terminal and on a pipe, exit codes, infer --wait, status, cancel, artifacts (list and download),
 * workers, the key and URL from the environment.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { runCli } from '@relu-lstm/client';
import { CANONICAL_TRAIN_EXAMPLE, type JobEvent } from '@relu-lstm/jobs';
import { apiError, sendJson, sseEvent, sseHead, startServer, type TestServer } from './helpers/server';

class Sink {
  text = '';
  constructor(
    readonly isTTY = false,
    readonly columns = 120,
  ) {}
  write(s: string) {
    this.text += s;
    return true;
  }
}

const links = (id: string) => ({
  self: `/v1/jobs/${id}`,
  events: `/v1/jobs/${id}/events`,
  artifacts: `/v1/jobs/${id}/artifacts`,
});
const metric = (epoch: number, step: number, epochEnd = false): JobEvent => ({
  type: 'metric',
  at: 1,
  epoch,
  step,
  loss: 1 / step,
  valLoss: null,
  gradNorm: 0.5,
  samplesPerSec: 100,
  elapsedMs: step * 10,
  ...(epochEnd ? { epochEnd } : {}),
});
const trainResult = {
  epochs: 3,
  steps: 24,
  finalLoss: 0.0123,
  finalValLoss: null,
  samplesPerSec: 900,
  elapsedMs: 2500,
  resumedFromEpoch: null,
  backend: 'wasm',
  gpu: false,
  artifacts: ['model.safetensors', 'state.json', 'metrics.csv', 'config.json'],
};

let server: TestServer;
let dir: string;
let spec: string;
beforeEach(async () => {
  server = await startServer();
  dir = await mkdtemp(join(tmpdir(), 'cli-'));
  spec = join(dir, 'spec.json');
  await writeFile(spec, JSON.stringify(CANONICAL_TRAIN_EXAMPLE));
});
afterEach(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

async function cli(argv: string[], opts: { tty?: boolean; env?: Record<string, string> } = {}) {
  const stdout = new Sink(opts.tty);
  const stderr = new Sink();
  const code = await runCli(argv, { stdout, stderr, env: { RELU_LSTM_URL: server.url, ...opts.env }, cwd: dir });
  return { code, out: stdout.text, err: stderr.text };
}

/** A train job whose event stream ends with `last`. */
function trainJob(last: JobEvent): string {
  const id = randomUUID();
  server.route('POST /v1/jobs/train', (_req, res) => sendJson(res, 202, { id, state: 'queued', links: links(id) }));
  server.route(`GET /v1/jobs/${id}/events`, (_req, res) => {
    sseHead(res);
    const events: JobEvent[] = [
      { type: 'state', at: 1, state: 'queued' },
      { type: 'state', at: 1, state: 'running', attempt: 1, workerId: 'w-1' },
      metric(0, 8, true),
      { type: 'log', at: 1, level: 'info', message: 'checkpoint at epoch 1', code: 'checkpoint' },
      metric(1, 12),
      last,
    ];
    events.forEach((e, i) => sseEvent(res, `${i + 1}-0`, e));
  });
  return id;
}

describe('submit --watch', () => {
  test('on a pipe: one line per event, a summary, exit 0 when the job completes', async () => {
    const id = trainJob({ type: 'state', at: 1, state: 'completed', result: trainResult });
    const { code, out, err } = await cli(['submit', 'spec.json', '--watch', '--api-key', 'k1']);
    expect(code).toBe(0);
    expect(err).toBe(`submitted train job ${id}\n`);
    expect(out.split('\n')).toEqual([
      'queued',
      'running (attempt 1) on w-1',
      '[#######-------------]  33% epoch 1/3 step 8 loss 0.125 |g| 0.5 100 samples/s 0.1s',
      'info: checkpoint at epoch 1',
      '[##########----------]  50% epoch 2/3 step 12 loss 0.08333 |g| 0.5 100 samples/s 0.1s',
      'completed: 3 epochs, 24 steps, final loss 0.0123 on wasm in 2.5s; artifacts: model.safetensors, state.json, metrics.csv, config.json',
      '',
    ]);
    expect(JSON.parse(server.requests[0].body)).toEqual(CANONICAL_TRAIN_EXAMPLE);
    expect(server.requests.every((r) => r.headers.authorization === 'Bearer k1')).toBe(true);
  });

  test('on a terminal: the bar is redrawn in place; a failed job exits 1 with its error on stderr', async () => {
    trainJob({
      type: 'state',
      at: 1,
      state: 'failed',
      error: { code: 'diverged', message: 'non-finite loss at epoch 2, step 12', retryable: false },
    });
    const { code, out, err } = await cli(['submit', 'spec.json', '-w'], { tty: true });
    expect(code).toBe(1);
    expect(out).toContain('\r\x1b[2K[##########----------]  50% epoch 2/3 step 12');
    expect(out).toContain('\r\x1b[2Kinfo: checkpoint at epoch 1\n');
    expect(out.endsWith('\n')).toBe(true); // the bar's line is ended before the error
    expect(err).toMatch(/job [0-9a-f-]+ failed: diverged: non-finite loss at epoch 2, step 12\n$/);
  });

  test('--json prints the events as JSON lines; a cancelled job exits 1', async () => {
    trainJob({
      type: 'state',
      at: 1,
      state: 'cancelled',
      error: { code: 'cancelled', message: 'cancelled by request', retryable: false },
    });
    const { code, out } = await cli(['submit', 'spec.json', '--watch', '--json']);
    expect(code).toBe(1);
    const lines = out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { id: string; type: string; state?: string });
    expect(lines.map((l) => l.id)).toEqual(['1-0', '2-0', '3-0', '4-0', '5-0', '6-0']);
    expect(lines[5]).toMatchObject({ type: 'state', state: 'cancelled' });
  });
});

describe('submit', () => {
  test('without --watch prints the id and state', async () => {
    const id = trainJob({ type: 'state', at: 1, state: 'completed' });
    expect(await cli(['submit', spec])).toEqual({ code: 0, out: `${id} queued\n`, err: '' });
  });

  test('an infer spec ("type": "infer") with --wait prints the result summary', async () => {
    const id = randomUUID();
    const modelJobId = randomUUID();
    await writeFile(spec, JSON.stringify({ type: 'infer', modelJobId, inputs: [[[0.1], [0.2], [0.3]]] }));
    const result = {
      outputs: [[[1], [2], [3]]],
      hN: [[[0, 0]]],
      cN: [[[0, 0]]],
      backend: 'cpu',
      gpu: false,
      elapsedMs: 12,
    };
    server.route('POST /v1/jobs/infer', (_req, res) =>
      sendJson(res, 200, { id, state: 'completed', result, error: null, links: links(id) }),
    );
    const { code, out } = await cli(['submit', 'spec.json', '--wait']);
    expect(code).toBe(0);
    expect(out).toBe(`${id} completed: outputs [1, 3, 1], hN [1, 1, 2], cN [1, 1, 2] on cpu in 0.0s\n`);
    expect(server.requests[0].query.get('wait')).toBe('true');
    expect(JSON.parse(server.requests[0].body)).toEqual({ modelJobId, inputs: [[[0.1], [0.2], [0.3]]] }); // "type" is not sent
  });

  test('an invalid spec exits 1 naming the fields, and nothing is sent; bad files and usage exit 2', async () => {
    await writeFile(
      spec,
      JSON.stringify({
        ...CANONICAL_TRAIN_EXAMPLE,
        training: { ...CANONICAL_TRAIN_EXAMPLE.training, epochs: 0, lr: 1 },
      }),
    );
    const bad = await cli(['submit', 'spec.json']);
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/^relu-lstm: invalid train payload: .*training\.epochs.*training\.lr/);
    expect(server.requests).toHaveLength(0);
    await writeFile(spec, '{ nope');
    expect(await cli(['submit', 'spec.json'])).toMatchObject({
      code: 2,
      err: expect.stringMatching(/spec\.json is not JSON/),
    });
    expect(await cli(['submit', 'missing.json'])).toMatchObject({
      code: 2,
      err: expect.stringMatching(/cannot read missing\.json/),
    });
    expect(await cli(['submit'])).toMatchObject({
      code: 2,
      err: expect.stringMatching(/'submit' takes <spec\.json>.*\nTry 'relu-lstm --help'/s),
    });
  });

  test("the server's 400 exits 1 with each field", async () => {
    server.route('POST /v1/jobs/train', (_req, res) =>
      apiError(res, 400, 'invalid_request', 'invalid body', [
        { path: 'model.hiddenSize', code: 'too_big', message: 'expected <= 8, received 16' },
      ]),
    );
    const { code, err } = await cli(['submit', 'spec.json']);
    expect(code).toBe(1);
    expect(err).toBe(
      'relu-lstm: POST /v1/jobs/train: 400 invalid_request: invalid body\n  model.hiddenSize: expected <= 8, received 16\n',
    );
  });
});

describe('other commands', () => {
  test('status, cancel and workers, as text and JSON', async () => {
    const id = randomUUID();
    const view = {
      id,
      type: 'train',
      state: 'running',
      queue: 'any',
      device: 'any',
      createdAt: 0,
      startedAt: 1,
      finishedAt: null,
      attempts: 1,
      maxAttempts: 3,
      cancelRequested: false,
      progress: { epoch: 1, step: 12, loss: 0.5, valLoss: 0.6, gradNorm: null, samplesPerSec: 1, elapsedMs: 1 },
      result: null,
      error: null,
      links: links(id),
    };
    server.route(`GET /v1/jobs/${id}`, (_req, res) => sendJson(res, 200, view));
    server.route(`DELETE /v1/jobs/${id}`, (_req, res) =>
      sendJson(res, 202, { id, state: 'running', cancelRequested: true }),
    );
    server.route('GET /v1/workers', (_req, res) =>
      sendJson(res, 200, {
        items: [
          {
            id: 'h-1-a',
            backend: 'tensorflow',
            gpu: true,
            device: 'cuda:0 (H100)',
            host: 'h',
            pid: 7,
            queues: ['gpu', 'any'],
            currentJobId: id,
            startedAt: 1,
            at: 2,
          },
        ],
      }),
    );
    expect((await cli(['status', id])).out).toBe(
      `${id}  train  running\n  queue any, attempts 1/3, created 1970-01-01T00:00:00.000Z\n  last: epoch 2 step 12 loss 0.5 val 0.6\n`,
    );
    expect(JSON.parse((await cli(['status', id, '--json'])).out)).toEqual(view);
    expect((await cli(['cancel', id])).out).toBe(`${id} running (stops at its next batch)\n`);
    expect((await cli(['workers'])).out).toBe(
      `h-1-a  tensorflow+gpu  cuda:0 (H100)  h:7  queues gpu,any  running ${id}\n`,
    );
    const missing = await cli(['status', 'nope']);
    expect(missing).toMatchObject({
      code: 1,
      err: 'relu-lstm: GET /v1/jobs/nope: 404 not_found: no route GET /v1/jobs/nope\n',
    });
  });

  test('artifacts: a listing, or every file downloaded into --out', async () => {
    const id = randomUUID();
    const files: Record<string, string> = { 'config.json': '{"a":1}', 'state.json': '{"h_n":[[[1]]]}' };
    server.route(`GET /v1/jobs/${id}/artifacts`, (_req, res) =>
      sendJson(res, 200, {
        jobId: id,
        items: Object.entries(files).map(([name, v]) => ({ name, size: v.length, modifiedAt: 0, url: '' })),
      }),
    );
    server.route(`GET /v1/jobs/${id}/artifacts/*`, (req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.end(files[req.path.split('/').pop()!]);
    });
    expect((await cli(['artifacts', id])).out).toBe(
      `config.json                             7  1970-01-01T00:00:00.000Z\nstate.json                             15  1970-01-01T00:00:00.000Z\n`,
    );
    const { code, out } = await cli(['artifacts', id, '--out', 'got']);
    expect(code).toBe(0);
    expect(out).toBe(`${join(dir, 'got', 'config.json')} (7 bytes)\n${join(dir, 'got', 'state.json')} (15 bytes)\n`);
    expect(await readFile(join(dir, 'got', 'state.json'), 'utf8')).toBe(files['state.json']);
  });

  test('no server: exit 1 with the connection error; --help exits 0', async () => {
    const closed = await startServer();
    const url = closed.url;
    await closed.close();
    const r = await cli(['workers', '--url', url]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^relu-lstm: GET \/v1\/workers: fetch failed \(.*ECONNREFUSED.*\)\n$/);
    expect(await cli(['--help'])).toMatchObject({
      code: 0,
      out: expect.stringContaining('Usage: relu-lstm <command>'),
    });
  });
});
