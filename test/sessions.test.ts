/**
 * Streaming inference sessions across real processes: the compiled api and workers on the real
 * Redis. A sequence fed through a session step by step (and in chunks) gives the outputs and final
 * (h, c) of one inference job over the whole sequence, within 1e-5, also when the worker that served
 * the first steps is SIGKILLed and another serves the rest, and when the worker that popped a step
 * freezes before answering (the api pushes the step again and another worker answers it); a retried
 * step returns the stored answer without advancing the session; a training on the worker does not
 * hold steps up; steps out of order and inputs the session cannot take are refused.
 */
import { randomBytes } from 'node:crypto';
import { RunnerClient, runCli } from '@relu-lstm/client';
import { http, startApi, type ApiProcess } from '../apps/api/test/harness';
import { Harness, waitFor, type WorkerProcess } from '../apps/worker/test/harness';

jest.setTimeout(180_000);

let api: ApiProcess;
let harness: Harness;
let worker: WorkerProcess;
let modelJobId: string;
let workerId = '';

/** A worker with a known id, so its connections can be told apart in CLIENT LIST. */
async function startWorker(): Promise<WorkerProcess> {
  workerId = `sess-${randomBytes(4).toString('hex')}`;
  return harness.startReadyWorker({ WORKER_ID: workerId });
}

/** Whether the worker's step connection is blocked in BRPOP on the step list (so the next step goes to it). */
async function waitingForSteps(id: string): Promise<boolean> {
  const clients = (await harness.redis.client('LIST')) as string;
  return clients
    .split('\n')
    .some(
      (l) => l.includes(`name=relu-lstm-worker:${id}:session-steps `) && / flags=b /.test(l) && / cmd=brpop /.test(l),
    );
}

type Tensor3 = number[][][];
interface Answer {
  seq: number;
  outputs: Tensor3;
  hN: Tensor3;
  cN: Tensor3;
}

const B = 2;
const T = 6;
/** x[b][t] = [sin(0.7 t + b), cos(0.3 t)]: two features. */
const sequence: Tensor3 = Array.from({ length: B }, (_, b) =>
  Array.from({ length: T }, (_, t) => [Math.sin(0.7 * t + b), Math.cos(0.3 * t)]),
);
const slice = (x: Tensor3, from: number, to: number): Tensor3 => x.map((row) => row.slice(from, to));

function maxAbsDiff(a: unknown, b: unknown): number {
  if (Array.isArray(a) && Array.isArray(b)) {
    if (a.length !== b.length) return Infinity;
    return a.reduce((m: number, v, i) => Math.max(m, maxAbsDiff(v, b[i])), 0);
  }
  return typeof a === 'number' && typeof b === 'number' ? Math.abs(a - b) : Infinity;
}

beforeAll(async () => {
  harness = new Harness();
  api = await startApi({
    QUEUE_PREFIX: harness.prefix,
    ARTIFACT_DIR: harness.artifactDir,
    DATASET_DIR: harness.datasetDir,
  });
  worker = await startWorker();
  // A two-layer model, so the state carried between steps has more than one layer.
  const x = Array.from({ length: 16 }, (_, n) =>
    Array.from({ length: 5 }, (_, t) => [Math.sin(n + t), Math.cos(n - t)]),
  );
  const y = x.map((s) => s.map(([a, b]) => [a * b]));
  const train = await http(api.url, 'POST', '/v1/jobs/train', {
    body: {
      model: { inputSize: 2, hiddenSize: 8, numLayers: 2, activation: 'relu', outputSize: 1, head: 'manyToMany' },
      data: { inline: { x, y } },
      training: { epochs: 2, batchSize: 8, learningRate: 0.01, seed: 3 },
    },
  });
  expect(train.status).toBe(202);
  modelJobId = train.json.id;
  await waitFor(
    async () => (await http(api.url, 'GET', `/v1/jobs/${modelJobId}`)).json.state === 'completed',
    60_000,
    () => `training did not complete:\n${worker.output()}`,
  );
});

afterAll(async () => {
  await api?.stop();
  await harness?.close();
});

async function reference(): Promise<Answer> {
  const r = await http(api.url, 'POST', '/v1/jobs/infer?wait=true', { body: { modelJobId, inputs: sequence } });
  expect(r.status).toBe(200);
  return r.json.result as Answer;
}

async function step(id: string, seq: number, inputs: Tensor3): Promise<Answer> {
  const r = await http(api.url, 'POST', `/v1/sessions/${id}/step`, { body: { seq, inputs } });
  if (r.status !== 200) throw new Error(`step ${seq}: ${r.status} ${r.text.slice(0, 300)}`);
  return r.json as Answer;
}

async function open(): Promise<string> {
  const r = await http(api.url, 'POST', '/v1/sessions', { body: { modelJobId } });
  expect(r.status).toBe(201);
  expect(r.json).toMatchObject({ modelJobId, next: 0 });
  return r.json.id as string;
}

it('one step at a time equals one inference over the whole sequence, across a worker SIGKILL', async () => {
  const ref = await reference();
  const id = await open();
  const outputs: Tensor3 = Array.from({ length: B }, () => []);
  let last: Answer | null = null;
  for (let t = 0; t < T; t++) {
    if (t === 3) {
      // The worker that served steps 0..2 dies; a new one (cold) serves the rest from the state in Redis.
      worker.proc.kill('SIGKILL');
      await worker.exited;
      worker = await startWorker();
    }
    last = await step(id, t, slice(sequence, t, t + 1));
    expect(last.seq).toBe(t);
    last.outputs.forEach((row, b) => outputs[b].push(...row));
    if (t === 4) {
      // A retry of the step just applied is answered from the stored answer; the session stays at 5.
      expect(await step(id, 4, slice(sequence, 4, 5))).toEqual(last);
      expect((await http(api.url, 'GET', `/v1/sessions/${id}`)).json.next).toBe(5);
    }
  }
  expect(maxAbsDiff(outputs, ref.outputs)).toBeLessThan(1e-5);
  expect(maxAbsDiff(last!.hN, ref.hN)).toBeLessThan(1e-5);
  expect(maxAbsDiff(last!.cN, ref.cN)).toBeLessThan(1e-5);
  expect(last!.hN.length).toBe(2); // two layers of state
});

it('chunks of several time steps continue from each other too', async () => {
  const ref = await reference();
  const id = await open();
  const a = await step(id, 0, slice(sequence, 0, 2));
  const b = await step(id, 1, slice(sequence, 2, 3));
  const c = await step(id, 2, slice(sequence, 3, T));
  const outputs = a.outputs.map((row, i) => [...row, ...b.outputs[i], ...c.outputs[i]]);
  expect(maxAbsDiff(outputs, ref.outputs)).toBeLessThan(1e-5);
  expect(maxAbsDiff(c.hN, ref.hN)).toBeLessThan(1e-5);
  expect(maxAbsDiff(c.cN, ref.cN)).toBeLessThan(1e-5);
});

it('a step popped by a worker that freezes before answering is answered by another worker', async () => {
  const ref = await reference();
  const id = await open();
  const a = await step(id, 0, slice(sequence, 0, 2));
  const frozen = worker;
  const frozenId = workerId;
  await waitFor(
    () => waitingForSteps(frozenId),
    10_000,
    () => 'the worker never waited on the step list',
  );
  frozen.proc.kill('SIGSTOP');
  const pending = http(api.url, 'POST', `/v1/sessions/${id}/step`, { body: { seq: 1, inputs: slice(sequence, 2, T) } });
  // The frozen worker's BRPOP took the request: nothing is left on the list for another worker.
  await new Promise((r) => setTimeout(r, 300)); // less than SESSION_STEP_RESEND_MS: not pushed again yet
  expect(await harness.redis.llen(harness.keys.sessionSteps())).toBe(0);
  worker = await startWorker();
  const b = await pending;
  expect([b.status, b.text.slice(0, 200)]).toEqual([200, expect.any(String)]);
  const outputs = a.outputs.map((row, i) => [...row, ...(b.json as Answer).outputs[i]]);
  expect(maxAbsDiff(outputs, ref.outputs)).toBeLessThan(1e-5);
  expect(maxAbsDiff((b.json as Answer).hN, ref.hN)).toBeLessThan(1e-5);
  // Woken up, the first worker finds the step applied: it answers from the stored answer, applies nothing.
  frozen.proc.kill('SIGCONT');
  await waitFor(
    () => waitingForSteps(frozenId),
    10_000,
    () => `the thawed worker did not go on:\n${frozen.output()}`,
  );
  expect((await http(api.url, 'GET', `/v1/sessions/${id}`)).json.next).toBe(2);
  expect(await step(id, 1, slice(sequence, 2, T))).toEqual(b.json);
  frozen.proc.kill('SIGKILL');
  await frozen.exited;
});

it('a training on the worker does not hold its steps up', async () => {
  const x = Array.from({ length: 64 }, (_, n) => Array.from({ length: 20 }, (_, t) => [Math.sin(n + t), Math.cos(t)]));
  const train = await http(api.url, 'POST', '/v1/jobs/train', {
    body: {
      model: { inputSize: 2, hiddenSize: 32, numLayers: 1, activation: 'relu', outputSize: 1, head: 'manyToMany' },
      data: { inline: { x, y: x.map((s) => s.map(([a]) => [a])) } },
      training: { epochs: 100_000, batchSize: 8, learningRate: 0.001, seed: 1 },
    },
  });
  expect(train.status).toBe(202);
  const jobId = train.json.id as string;
  const state = async () => (await http(api.url, 'GET', `/v1/jobs/${jobId}`)).json.state as string;
  try {
    await waitFor(
      async () => (await state()) === 'running',
      30_000,
      () => 'the training did not start',
    );
    const id = await open();
    for (let t = 0; t < 3; t++) expect((await step(id, t, slice(sequence, t, t + 1))).seq).toBe(t);
    // Served while the training ran on the same worker.
    expect(await state()).toBe('running');
  } finally {
    await http(api.url, 'DELETE', `/v1/jobs/${jobId}`);
    await waitFor(
      async () => (await state()) === 'cancelled',
      30_000,
      () => 'the training was not cancelled',
    );
  }
});

it('refuses steps out of order, bad inputs and closed sessions, naming the field', async () => {
  const id = await open();
  const ahead = await http(api.url, 'POST', `/v1/sessions/${id}/step`, {
    body: { seq: 1, inputs: slice(sequence, 0, 1) },
  });
  expect(ahead.status).toBe(409);
  expect(ahead.json.error.issues[0]).toMatchObject({ path: 'seq', expected: '0', received: '1' });
  const wide = await http(api.url, 'POST', `/v1/sessions/${id}/step`, { body: { seq: 0, inputs: [[[1, 2, 3]]] } });
  expect(wide.status).toBe(400);
  expect(wide.json.error.issues[0].path).toBe('inputs');
  // The session's batch is fixed by its first step (two sequences here): three are refused, nothing applied.
  expect((await step(id, 0, slice(sequence, 0, 1))).seq).toBe(0);
  const third = sequence[0].slice(1, 2);
  const more = await http(api.url, 'POST', `/v1/sessions/${id}/step`, {
    body: { seq: 1, inputs: [...slice(sequence, 1, 2), third] },
  });
  expect([more.status, more.text.slice(0, 300)]).toEqual([400, expect.any(String)]);
  expect(more.json.error.issues[0]).toMatchObject({
    path: 'inputs',
    expected: 'shape [2, T, features]',
    received: '3 sequences',
  });
  expect((await http(api.url, 'GET', `/v1/sessions/${id}`)).json.next).toBe(1);
  const byName = await http(api.url, 'POST', '/v1/sessions', { body: { model: 'forecaster@prod' } });
  expect(byName.status).toBe(400);
  expect(byName.json.error.issues[0].path).toBe('model');
  expect((await http(api.url, 'DELETE', `/v1/sessions/${id}`)).status).toBe(204);
  const closed = await http(api.url, 'POST', `/v1/sessions/${id}/step`, {
    body: { seq: 0, inputs: slice(sequence, 0, 1) },
  });
  expect(closed.status).toBe(404);
});

it('a session opened by a registry reference runs the registered version, equal to the job it came from', async () => {
  const ref = await reference();
  const name = `forecaster-${Date.now()}`;
  const reg = await http(api.url, 'POST', '/v1/models', { body: { name, fromJob: modelJobId } });
  expect(reg.status).toBe(201);
  expect((await http(api.url, 'PUT', `/v1/models/${name}/aliases/prod`, { body: { version: 1 } })).status).toBe(200);
  const r = await http(api.url, 'POST', '/v1/sessions', { body: { model: `${name}@prod` } });
  expect([r.status, r.text.slice(0, 200)]).toEqual([201, expect.any(String)]);
  expect(r.json).toMatchObject({ model: `${name}@1`, modelJobId, next: 0 });
  const a = await step(r.json.id, 0, slice(sequence, 0, 2));
  const b = await step(r.json.id, 1, slice(sequence, 2, T));
  const outputs = a.outputs.map((row, i) => [...row, ...b.outputs[i]]);
  expect(maxAbsDiff(outputs, ref.outputs)).toBeLessThan(1e-5);
  expect(maxAbsDiff(b.hN, ref.hN)).toBeLessThan(1e-5);
  const unknown = await http(api.url, 'POST', '/v1/sessions', { body: { model: `${name}@staging` } });
  expect(unknown.status).toBe(400);
  expect(unknown.json.error.issues[0]).toMatchObject({ path: 'model', message: `model ${name} has no alias staging` });
});

it('the typed client and the CLI stream through sessions as well', async () => {
  const ref = await reference();
  const client = new RunnerClient({ baseUrl: api.url });
  const opened = await client.openSession({ modelJobId });
  let last = await client.step(opened.id, 0, slice(sequence, 0, 3));
  last = await client.step(opened.id, 1, slice(sequence, 3, T));
  expect(maxAbsDiff(last.hN, ref.hN)).toBeLessThan(1e-5);
  expect((await client.getSession(opened.id)).next).toBe(2);
  await client.closeSession(opened.id);

  let text = '';
  const io = {
    stdout: { write: (t: string) => void (text += t) },
    stderr: { write: () => undefined },
    env: {},
    stdin: () => Promise.resolve(JSON.stringify(sequence)),
  };
  expect(await runCli(['session', modelJobId, '-', '--url', api.url, '--json'], io)).toBe(0);
  const lines = text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, Tensor3>);
  expect(lines).toHaveLength(T + 1);
  expect(maxAbsDiff(lines[T].hN, ref.hN)).toBeLessThan(1e-5);
  expect(maxAbsDiff(lines[T].cN, ref.cN)).toBeLessThan(1e-5);
});
