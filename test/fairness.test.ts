/**
 * Fairness between tenants across real processes (the compiled api and a compiled worker, real Redis):
 * tenant alpha queues 50 low-priority jobs (priority 10), then beta queues one high-priority job
 * (priority 1) and gamma one low-priority job (priority 10). The worker starts once all are queued,
 * so the order it takes them in is the queue's alone (producer.ts `FAIR_SHARE`): beta's job first,
 * gamma's after at most one of alpha's, though both came after alpha's 50. Prints the measured waits.
 */
import { randomUUID } from 'node:crypto';
import { RunnerClient } from '@relu-lstm/client';
import type { JobView } from '@relu-lstm/jobs';
import { startApi, type ApiProcess } from '../apps/api/test/harness';
import { sha256 } from '../apps/api/src/http/api-keys';
import { Harness, tinyInlineInfer } from '../apps/worker/test/harness';

jest.setTimeout(180_000);

const FLOOD = 50;
const KEY = { alpha: `ka-${randomUUID()}`, beta: `kb-${randomUUID()}`, gamma: `kg-${randomUUID()}` };
type Tenant = keyof typeof KEY;

let api: ApiProcess;
let harness: Harness;
let clients: Record<Tenant, RunnerClient>;

beforeAll(async () => {
  harness = new Harness();
  const keys = (Object.keys(KEY) as Tenant[]).map((t) => `${t}:${sha256(KEY[t]).toString('hex')}`);
  api = await startApi({
    QUEUE_PREFIX: harness.prefix,
    ARTIFACT_DIR: harness.artifactDir,
    DATASET_DIR: harness.datasetDir,
    API_KEYS: keys.join(','),
    RATE_LIMIT_RPS: '1000',
  });
  const client = (t: Tenant) => new RunnerClient({ baseUrl: api.url, apiKey: KEY[t] });
  clients = { alpha: client('alpha'), beta: client('beta'), gamma: client('gamma') };
});

afterAll(async () => {
  await api?.stop();
  await harness?.close();
});

/** Polls until `ids` have all completed; their views. */
async function completed(tenant: Tenant, ids: string[]): Promise<JobView[]> {
  for (const deadline = Date.now() + 150_000; Date.now() < deadline;) {
    const views = await Promise.all(ids.map((id) => clients[tenant].get(id)));
    if (views.every((v) => v.state === 'completed')) return views;
    if (views.some((v) => v.state === 'failed' || v.state === 'cancelled'))
      throw new Error(`a job ended ${JSON.stringify(views.map((v) => [v.state, v.error]))}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('jobs did not complete in time');
}

test("one tenant's flood of low-priority jobs does not hold back other tenants' jobs", async () => {
  const payload = tinyInlineInfer(2);
  const flood: string[] = [];
  for (let i = 0; i < FLOOD; i++) flood.push((await clients.alpha.submitInfer(payload, { priority: 10 })).id);
  const beta = (await clients.beta.submitInfer(payload, { priority: 1 })).id;
  const gamma = (await clients.gamma.submitInfer(payload, { priority: 10 })).id;

  const spawned = Date.now();
  await harness.startReadyWorker();
  const [b] = await completed('beta', [beta]);
  const [g] = await completed('gamma', [gamma]);
  const alpha = await completed('alpha', flood);
  const startedBefore = (t: number) => alpha.filter((v) => v.startedAt! < t).length;
  const lastAlpha = Math.max(...alpha.map((v) => v.startedAt!));

  const aheadOfBeta = startedBefore(b.startedAt!);
  const aheadOfGamma = startedBefore(g.startedAt!);
  console.log(
    [
      `fairness (${FLOOD} alpha jobs at priority 10 queued first, one worker started once all were queued; ms since the worker process was spawned):`,
      `  beta  (priority 1):  started at ${b.startedAt! - spawned} ms (${b.startedAt! - b.createdAt} ms after its submission), alpha jobs started before it: ${aheadOfBeta}`,
      `  gamma (priority 10): started at ${g.startedAt! - spawned} ms (${g.startedAt! - g.createdAt} ms after its submission), alpha jobs started before it: ${aheadOfGamma}`,
      `  alpha's last job:    started at ${lastAlpha - spawned} ms`,
    ].join('\n'),
  );
  expect(aheadOfBeta).toBe(0);
  expect(aheadOfGamma).toBeLessThanOrEqual(1);
  expect(b.priority).toBe(1);
});
