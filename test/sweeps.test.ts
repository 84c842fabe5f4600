/**
 * Sweeps across real processes: the compiled api and two compiled workers on the real Redis (a
 * unique prefix). A grid sweep of 6 trials with maxConcurrent 2 runs as a BullMQ flow, never more
 * than 2 trials at once (from the trials' own event streams), and ends with the trials ranked by
 * their final validation loss; an invalid trial refuses the whole sweep before anything is queued; a
 * cancelled sweep leaves no trial running.
 */
import { isTerminal, type JobEvent, type StateEvent, type SweepView } from '@relu-lstm/jobs';
import { runCli } from '@relu-lstm/client';
import { http, readSse, startApi, type ApiProcess } from '../apps/api/test/harness';
import { Harness, waitFor } from '../apps/worker/test/harness';

jest.setTimeout(240_000);

let api: ApiProcess;
let harness: Harness;

const base = (epochs: number) => ({
  model: { inputSize: 1, hiddenSize: 4, numLayers: 1, activation: 'relu', outputSize: 1 },
  data: { synthetic: { kind: 'sine', samples: 48, seqLen: 6 } },
  training: { epochs, batchSize: 16, optimizer: 'adam', learningRate: 0.01, seed: 1, validationSplit: 0.25 },
  device: 'any',
});

beforeAll(async () => {
  harness = new Harness();
  api = await startApi({
    QUEUE_PREFIX: harness.prefix,
    ARTIFACT_DIR: harness.artifactDir,
    DATASET_DIR: harness.datasetDir,
  });
  await Promise.all([harness.startReadyWorker(), harness.startReadyWorker()]);
});

afterAll(async () => {
  await api?.stop();
  await harness?.close();
});

async function sweepOf(id: string): Promise<SweepView> {
  const r = await http(api.url, 'GET', `/v1/sweeps/${id}`);
  expect(r.status).toBe(200);
  return r.json as SweepView;
}

async function waitForSweep(id: string, done: (s: SweepView) => boolean, timeoutMs: number): Promise<SweepView> {
  let last: SweepView | null = null;
  await waitFor(
    async () => done((last = await sweepOf(id))),
    timeoutMs,
    () => `sweep ${id} did not get there: ${JSON.stringify(last)}`,
  );
  return last!;
}

/** [start, end] of each trial's run, from its `running` and terminal state events. */
async function runIntervals(ids: string[]): Promise<Array<[number, number]>> {
  const all = await Promise.all(ids.map((id) => harness.allEvents(id)));
  return all.flatMap((events) => {
    const states = events.filter((e): e is StateEvent => e.type === 'state');
    const start = states.find((s) => s.state === 'running')?.at;
    const end = states.find((s) => isTerminal(s.state))?.at;
    return start === undefined || end === undefined ? [] : [[start, end] as [number, number]];
  });
}

function mostAtOnce(intervals: Array<[number, number]>): number {
  const points = intervals.flatMap(([s, e]) => [
    [s, 1],
    [e, -1],
  ]);
  points.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let now = 0;
  let most = 0;
  for (const [, d] of points) most = Math.max(most, (now += d));
  return most;
}

it('refuses a sweep with an invalid trial, naming the trial and the field, and queues nothing', async () => {
  const r = await http(api.url, 'POST', '/v1/sweeps', {
    body: { base: base(1), search: { grid: { 'model.hiddenSize': [4, 0] } }, maxConcurrent: 2 },
  });
  expect(r.status).toBe(400);
  const issues = r.json.error.issues as Array<{ path: string; message: string }>;
  expect(issues.map((i) => i.path)).toEqual(['trials[1].model.hiddenSize']);
  expect(issues[0].message).toContain('"model.hiddenSize":0');
  expect(await harness.redis.zcard(harness.keys.jobIndex('default'))).toBe(0);
});

it('runs a grid of 6 trials at most 2 at once on two workers and ranks them by validation loss', async () => {
  const r = await http(api.url, 'POST', '/v1/sweeps', {
    body: {
      base: base(2),
      search: { grid: { 'training.learningRate': [0.003, 0.01, 0.03], 'model.hiddenSize': [4, 8] } },
      maxConcurrent: 2,
    },
  });
  expect(r.status).toBe(202);
  const { id, trialIds } = r.json as { id: string; trialIds: string[] };
  expect(trialIds).toHaveLength(6);
  const done = await waitForSweep(id, (s) => s.state === 'completed', 200_000);
  expect(done.trials.map((t) => t.state)).toEqual(Array(6).fill('completed'));
  expect(done.trials.map((t) => t.rank)).toEqual([1, 2, 3, 4, 5, 6]);
  const metrics = done.trials.map((t) => t.metric!);
  expect(metrics).toEqual([...metrics].sort((a, b) => a - b));
  // Each metric is the trial's own final validation loss, from its own record.
  for (const t of done.trials) {
    const job = await http(api.url, 'GET', `/v1/jobs/${t.id}`);
    expect(job.json.result.finalValLoss).toBe(t.metric);
  }
  expect(new Set(done.trials.map((t) => JSON.stringify(t.params))).size).toBe(6);
  expect(mostAtOnce(await runIntervals(trialIds))).toBeLessThanOrEqual(2);
  // One `trial` event per finished child on the sweep's stream, then its terminal state.
  const events = await harness.allEvents(id);
  const trialEvents = events.filter((e): e is Extract<JobEvent, { type: 'trial' }> => e.type === 'trial');
  expect(trialEvents.map((e) => e.trialId).sort()).toEqual([...trialIds].sort());
  expect(events[events.length - 1]).toMatchObject({ type: 'state', state: 'completed' });

  // The same over SSE: the stream ends after the sweep's terminal event.
  const sse = await readSse(api.url, `/v1/sweeps/${id}/events`, { timeoutMs: 10_000 });
  expect([sse.status, sse.ended]).toEqual([200, true]);
  expect(sse.events.map((e) => (e.data as JobEvent).type)).toEqual([...Array(6).fill('trial'), 'state']);

  // The CLI prints the ranked table.
  let text = '';
  const io = { stdout: { write: (t: string) => void (text += t) }, stderr: { write: () => undefined }, env: {} };
  expect(await runCli(['sweep-status', id, '--url', api.url], io)).toBe(0);
  const rows = text.split('\n').slice(2, 8);
  expect(rows.map((r) => r.trim().split(/\s+/)[0])).toEqual(['1', '2', '3', '4', '5', '6']);
  expect(rows[0]).toContain(done.trials[0].id);
});

it('cancelling a sweep cancels its running and queued trials; none is left running', async () => {
  const r = await http(api.url, 'POST', '/v1/sweeps', {
    // Trials far longer than the test (a quiet machine ran 200 epochs in under 1.5 s): only the cancel ends them.
    body: {
      base: base(20_000),
      search: { grid: { 'training.learningRate': [0.001, 0.002, 0.004] } },
      maxConcurrent: 1,
    },
  });
  expect(r.status).toBe(202);
  const { id, trialIds } = r.json as { id: string; trialIds: string[] };
  // The gate holds the others back even though two workers are free.
  const running = await waitForSweep(id, (s) => s.trials.some((t) => t.state === 'running'), 60_000);
  await new Promise((res) => setTimeout(res, 1500));
  const stillOne = await sweepOf(id);
  expect(stillOne.trials.filter((t) => t.state === 'running')).toHaveLength(1);
  expect(running.state).toBe('running');

  const del = await http(api.url, 'DELETE', `/v1/sweeps/${id}`);
  expect(del.status).toBe(200);
  const ended = await waitForSweep(id, (s) => s.state === 'cancelled', 60_000);
  expect(ended.trials.map((t) => t.state)).toEqual(Array(3).fill('cancelled'));
  const workers = await http(api.url, 'GET', '/v1/workers');
  await waitFor(
    async () => {
      const w = await http(api.url, 'GET', '/v1/workers');
      return (w.json.items as Array<{ currentJobId: string | null }>).every((x) => !trialIds.includes(x.currentJobId!));
    },
    10_000,
    () => `a worker still runs a trial: ${workers.text}`,
  );
  // The parent ran once every trial had ended: its stream ends `cancelled`.
  await waitFor(
    async () => {
      const events = await harness.allEvents(id);
      return events.some((e) => e.type === 'state' && e.state === 'cancelled');
    },
    20_000,
    () => `the sweep's parent did not end`,
  );
});

it("counts a sweep's trials against the tenant's job quota: too many refuses the sweep, queueing nothing", async () => {
  const small = await startApi({
    QUEUE_PREFIX: harness.prefix,
    ARTIFACT_DIR: harness.artifactDir,
    DATASET_DIR: harness.datasetDir,
    MAX_QUEUED_JOBS_PER_TENANT: '2',
  });
  try {
    const before = await harness.redis.zcard(harness.keys.jobIndex('default'));
    const r = await http(small.url, 'POST', '/v1/sweeps', {
      body: { base: base(1), search: { grid: { 'model.hiddenSize': [4, 5, 6] } }, maxConcurrent: 3 },
    });
    expect(r.status).toBe(429);
    expect(r.json.error.code).toBe('quota_exceeded');
    expect(await harness.redis.zcard(harness.keys.jobIndex('default'))).toBe(before);
    expect(await harness.redis.scard(harness.keys.liveJobs('default'))).toBe(0);
  } finally {
    await small.stop();
  }
});

it('the median stopping rule stops exactly the trials worse than the median of those before them', async () => {
  const r = await http(api.url, 'POST', '/v1/sweeps', {
    body: {
      base: base(3),
      search: { grid: { 'training.learningRate': [0.05, 0.00001, 0.02, 0.00002] } },
      maxConcurrent: 1,
      earlyStop: { afterEpochs: 1, minTrials: 1 },
    },
  });
  expect(r.status).toBe(202);
  const { id, trialIds } = r.json as { id: string; trialIds: string[] };
  const done = await waitForSweep(id, (s) => s.state === 'completed', 200_000);
  // Each trial's validation loss after epoch 1 and when it got there, from its own events.
  const reports = await Promise.all(
    trialIds.map(async (trialId) => {
      const events = await harness.allEvents(trialId);
      const first = events.find((e) => e.type === 'metric' && e.epochEnd && e.epoch === 0);
      const stopped = events.some((e) => e.type === 'log' && e.code === 'median_stopped');
      if (first?.type !== 'metric') throw new Error(`trial ${trialId} has no first epoch`);
      return { trialId, at: first.at, value: first.valLoss!, stopped };
    }),
  );
  reports.sort((a, b) => a.at - b.at);
  const expected = reports.map((t, i) => {
    const earlier = reports
      .slice(0, i)
      .map((e) => e.value)
      .sort((a, b) => a - b);
    const m =
      earlier.length % 2
        ? earlier[earlier.length >> 1]
        : (earlier[earlier.length / 2 - 1] + earlier[earlier.length / 2]) / 2;
    return earlier.length >= 1 && t.value > m;
  });
  expect(reports.map((t) => t.stopped)).toEqual(expected);
  expect(expected).toContain(true);
  const states = new Map(done.trials.map((t) => [t.id, t.state]));
  for (const t of reports) expect(states.get(t.trialId)).toBe(t.stopped ? 'cancelled' : 'completed');
});

it("a sweep's trials hold the dataset they train on, as train jobs do", async () => {
  const x = Array.from({ length: 8 }, (_, n) => Array.from({ length: 4 }, (_, t) => [Math.sin(n + t)]));
  const ds = await http(api.url, 'POST', '/v1/datasets', { body: { x, y: x } });
  expect(ds.status).toBe(201);
  const spec = { ...base(1), data: { datasetId: ds.json.id as string }, device: 'gpu' }; // no GPU worker: they wait
  const r = await http(api.url, 'POST', '/v1/sweeps', {
    body: { base: spec, search: { grid: { 'model.hiddenSize': [4, 6] } }, maxConcurrent: 1 },
  });
  expect(r.status).toBe(202);
  const del = await http(api.url, 'DELETE', `/v1/datasets/${ds.json.id as string}`);
  expect(del.status).toBe(409);
  for (const trialId of r.json.trialIds as string[]) expect(del.json.error.message).toContain(trialId);
  expect((await http(api.url, 'DELETE', `/v1/sweeps/${r.json.id as string}`)).status).toBe(200);
  const ended = await waitForSweep(r.json.id as string, (s) => s.state === 'cancelled', 30_000);
  expect(ended.trials.map((t) => t.state)).toEqual(['cancelled', 'cancelled']);
  await waitFor(
    async () => (await http(api.url, 'DELETE', `/v1/datasets/${ds.json.id as string}`)).status === 204,
    10_000,
    () => 'the dataset stayed held after the sweep was cancelled',
  );
});
