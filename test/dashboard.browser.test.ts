/**
 * The dashboard in a real browser: Debian's Chromium driven by playwright-core against the compiled
 * api and a compiled worker (real Redis, unique prefix). The canonical job is submitted from the form
 * and watched training; a second job is cancelled from its page; a reload replays the curve; the
 * jobs list filters; an api error is shown as the api words it; a grid sweep started from its form
 * is ranked on its page as its stream reports trials; a job's name and tags find it; a registered
 * model is listed with its files; with keys the page asks for one and sends it as a bearer token,
 * never in a URL. Screenshots of the job, jobs, sweep and models pages go to docs/img (the README
 * shows them). Without Chromium it prints one SKIPPED line, except under CI=true.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { RunnerClient } from '@relu-lstm/client';
import { CANONICAL_TRAIN_EXAMPLE } from '@relu-lstm/jobs';
import { startApi, type ApiProcess } from '../apps/api/test/harness';
import { Harness } from '../apps/worker/test/harness';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const IMG_DIR = join(__dirname, '..', 'docs', 'img');
const runs = existsSync(CHROMIUM) || process.env.CI === 'true';
if (!runs) process.stdout.write(`SKIPPED dashboard browser test: no Chromium at ${CHROMIUM} (set CHROMIUM_PATH)\n`);
const suite = runs ? describe : describe.skip;

jest.setTimeout(90_000);

/** What the page showed over time: the loss chart's point count and the job's and sweep's state badges, at each change. */
interface Seen {
  t: number;
  points: number;
  state: string | null;
  sweep: string | null;
}

/** The page's globals these tests use, declared here: the file compiles without the DOM types. */
declare const document: {
  getElementById(id: string): { dataset: Record<string, string | undefined>; textContent: string | null } | null;
};
declare const window: { __seen: Seen[] };
declare const MutationObserver: new (callback: () => void) => {
  observe(target: unknown, options: Record<string, unknown>): void;
};

/** Run in the page before its own script: records each change of the loss chart's points and of the badges. */
function recordChanges(): void {
  window.__seen = [];
  new MutationObserver(() => {
    const chart = document.getElementById('chart-loss');
    const badge = document.getElementById('job-state');
    window.__seen.push({
      t: Date.now(),
      points: Number(chart?.dataset.points ?? 0),
      state: badge?.dataset.state ?? null,
      sweep: document.getElementById('sweep-state')?.dataset.state ?? null,
    });
  }).observe(document, {
    subtree: true,
    childList: true,
    attributes: true,
    attributeFilter: ['data-points', 'data-state'],
  });
}

/** The point count of a chart (each chart element carries it as `data-points`). */
const pointsOf = async (page: Page, chart = '#chart-loss') => Number(await page.getAttribute(chart, 'data-points'));

/** Waits until the loss chart has `exactly` points, or at least `atLeast`. */
const waitForPoints = (page: Page, want: { atLeast?: number; exactly?: number }) =>
  page.waitForFunction(({ atLeast, exactly }) => {
    const n = Number(document.getElementById('chart-loss')?.dataset.points ?? 0);
    return exactly === undefined ? n >= (atLeast ?? 1) : n === exactly;
  }, want);

/** The values of `attribute` on every element matching `selector`. */
async function attributes(page: Page, selector: string, attribute: string): Promise<(string | null)[]> {
  return Promise.all((await page.locator(selector).all()).map((l) => l.getAttribute(attribute)));
}

async function submitFromForm(page: Page, url: string, edits: Record<string, string> = {}): Promise<string> {
  await page.goto(`${url}/ui#/submit`);
  await page.waitForSelector('#submit-form');
  for (const [name, value] of Object.entries(edits)) await page.fill(`[name="${name}"]`, value);
  await page.click('#submit-form button[type=submit]');
  await page.waitForURL(/#\/jobs\/[0-9a-f-]{36}$/);
  return page.url().split('/').pop()!;
}

suite('dashboard in Chromium', () => {
  let api: ApiProcess;
  let harness: Harness;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  const pageErrors: string[] = [];
  let trainId: string;

  beforeAll(async () => {
    harness = new Harness();
    [api, browser] = await Promise.all([
      startApi({ QUEUE_PREFIX: harness.prefix, ARTIFACT_DIR: harness.artifactDir, DATASET_DIR: harness.datasetDir }),
      chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] }),
      harness.startReadyWorker(),
    ] as const);
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    await context.addInitScript(recordChanges);
    page = await context.newPage();
    // Console errors include CSP violations: the page must work under the api's headers.
    page.on('console', (m) => m.type() === 'error' && pageErrors.push(m.text()));
    page.on('pageerror', (e) => pageErrors.push(e.message));
    mkdirSync(IMG_DIR, { recursive: true });
  });

  afterAll(async () => {
    await browser?.close();
    await api?.stop();
    await harness?.close();
  });

  test('the canonical job from the form: the chart gains points while it trains, then it completes with its artifacts', async () => {
    const submittedAt = Date.now();
    trainId = await submitFromForm(page, api.url);
    await waitForPoints(page, { atLeast: 1 });
    const firstPoint = Date.now() - submittedAt;
    await page.waitForSelector('#job-state[data-state="completed"]', { timeout: 60_000 });
    const seen = await page.evaluate(() => window.__seen);
    const running = seen.find((s) => s.state === 'running');
    process.stdout.write(
      `dashboard: submit to first chart point ${firstPoint} ms (shown running after ${running ? running.t - submittedAt : '?'} ms)\n`,
    );

    const metrics: number[] = [];
    for await (const e of new RunnerClient({ baseUrl: api.url }).events(trainId)) {
      if (e.event.type === 'metric') metrics.push(e.event.step);
    }
    const beforeEnd = seen.filter((s) => s.state !== 'completed').map((s) => s.points);
    // Drawn as the events came: several counts before the end, growing to one point per metric event.
    expect(new Set(beforeEnd.filter((n) => n > 0)).size).toBeGreaterThanOrEqual(2);
    expect(beforeEnd).toEqual([...beforeEnd].sort((a, b) => a - b));
    await waitForPoints(page, { exactly: metrics.length });
    for (const id of ['#chart-grad', '#chart-lr', '#chart-speed']) {
      expect(await pointsOf(page, id)).toBe(metrics.length);
    }

    await page.waitForSelector('#artifacts tr[data-name="model.safetensors"]');
    const names = await attributes(page, '#artifacts tr', 'data-name');
    expect(names.sort()).toEqual(['config.json', 'metrics.csv', 'model.safetensors', 'state.json']);
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.click('#artifacts tr[data-name="state.json"] button'),
    ]);
    expect(download.suggestedFilename()).toBe('state.json');
    const stateJson = JSON.parse(readFileSync(await download.path(), 'utf8')) as { shapes: { h_n: number[] } };
    expect(stateJson.shapes.h_n).toEqual([1, expect.any(Number), 16]);

    const timeline = await attributes(page, '#timeline li', 'data-kind');
    expect(timeline).toEqual(expect.arrayContaining(['queued', 'running', 'checkpoint', 'completed']));
    expect(await page.textContent('#timeline')).toContain('attempt 1');
    expect(await page.textContent('#result')).toContain('model.safetensors');
    await page.waitForSelector('#final-state');
    expect(await page.textContent('#final-state')).toContain(`shape [${stateJson.shapes.h_n.join(', ')}]`);
    await page.screenshot({ path: join(IMG_DIR, 'dashboard-job.png'), fullPage: true });
  });

  test('a reload replays the whole curve from the event stream', async () => {
    const before = await pointsOf(page);
    await page.reload();
    await page.waitForSelector('#job-state[data-state="completed"]');
    await waitForPoints(page, { exactly: before });
    expect(before).toBeGreaterThan(0);
  });

  test("an inference job's page shows the shapes of its outputs, hN and cN", async () => {
    const client = new RunnerClient({ baseUrl: api.url });
    const res = await client.submitInfer({ modelJobId: trainId, inputs: [[[0.1], [0.2], [0.3]]] }, { wait: true });
    expect(res.state).toBe('completed');
    await page.goto(`${api.url}/ui#/jobs/${res.id}`);
    await page.waitForSelector('#job-state[data-state="completed"]');
    await page.waitForSelector('#result table');
    const result = await page.textContent('#result');
    expect(result).toContain('outputsshape [1, 3, 1]');
    expect(result).toContain('hNshape [1, 1, 16]');
    expect(result).toContain('cNshape [1, 1, 16]');
    expect(await page.isHidden('.charts')).toBe(true);
  });

  test('a long job is cancelled from its page while its curve grows', async () => {
    const id = await submitFromForm(page, api.url, { 'training.epochs': '2000' });
    await page.waitForSelector('#job-state[data-state="running"]');
    await waitForPoints(page, { atLeast: 3 });
    await page.click('#cancel');
    await page.waitForSelector('#job-state[data-state="cancelled"]', { timeout: 30_000 });
    expect(await page.isDisabled('#cancel')).toBe(true);
    expect(await page.locator('#timeline li[data-kind="cancelled"]').count()).toBe(1);
    expect((await new RunnerClient({ baseUrl: api.url }).get(id)).state).toBe('cancelled');
  });

  test('the jobs list shows both, filters by state, and the workers page shows the worker', async () => {
    await page.goto(`${api.url}/ui#/jobs`);
    await page.waitForSelector(`#jobs tr[data-id="${trainId}"][data-state="completed"]`);
    await page.waitForSelector('#jobs tr[data-state="cancelled"]');
    await page.screenshot({ path: join(IMG_DIR, 'dashboard-jobs.png'), fullPage: true });
    await page.selectOption('select[name="state"]', 'cancelled');
    await page.waitForURL(/#\/jobs\?state=cancelled$/);
    await page.waitForSelector('#jobs tbody tr[data-state="cancelled"]');
    expect(await attributes(page, '#jobs tbody tr', 'data-state')).toEqual(['cancelled']);
    await page.goto(`${api.url}/ui#/workers`);
    await page.waitForSelector('#workers tbody tr[data-id]');
    expect(await page.textContent('#workers tbody')).toMatch(/tensorflow|wasm|cpu/);
  });

  test("a refused submission shows the api's words and marks the field", async () => {
    await page.goto(`${api.url}/ui#/submit`);
    await page.waitForSelector('#submit-form');
    await page.fill('[name="model.hiddenSize"]', '0');
    await page.click('#submit-form button[type=submit]');
    await page.waitForSelector('#error:not([hidden])');
    const text = await page.textContent('#error');
    expect(text).toContain('400 invalid_request');
    expect(text).toContain('model.hiddenSize');
    expect(await attributes(page, 'label.invalid [name]', 'name')).toEqual(['model.hiddenSize']);
    pageErrors.splice(0, pageErrors.length, ...pageErrors.filter((e) => !/status of 400/.test(e)));
    expect(pageErrors).toEqual([]);
  });

  test('tags the form cannot read, or the api refuses, are named and the tags field marked', async () => {
    await page.goto(`${api.url}/ui#/submit`);
    await page.reload(); // a fresh form: the previous test left this one's hiddenSize refused
    await page.waitForSelector('#submit-form');
    await page.fill('[name="tags"]', 'project');
    await page.click('#submit-form button[type=submit]');
    await page.waitForSelector('#error:not([hidden])');
    expect(await page.textContent('#error')).toContain('tags: expected key=value, received "project"');
    expect(await attributes(page, 'label.invalid [name]', 'name')).toEqual(['tags']);
    await page.fill('[name="tags"]', 'bad key=x');
    await page.click('#submit-form button[type=submit]');
    await page.waitForFunction(() => document.getElementById('error')?.textContent?.includes('400 invalid_request'));
    expect(await page.textContent('#error')).toContain('tags.bad key');
    expect(await attributes(page, 'label.invalid [name]', 'name')).toEqual(['tags']);
    pageErrors.splice(0, pageErrors.length, ...pageErrors.filter((e) => !/status of 400/.test(e)));
  });

  test("a grid sweep started from the form ranks its trials on its page, following the sweep's stream", async () => {
    const streams: string[] = [];
    const onRequest = (r: { url(): string }) => {
      if (/\/v1\/sweeps\/[^/]+\/events$/.test(new URL(r.url()).pathname)) streams.push(r.url());
    };
    page.on('request', onRequest);
    await page.goto(`${api.url}/ui#/sweeps`);
    await page.waitForSelector('#sweep-form');
    await page.fill('[name="learningRates"]', '0.01, 0.03');
    await page.fill('[name="hiddenSizes"]', '8');
    await page.fill('[name="epochs"]', '1');
    const submittedAt = Date.now();
    await page.click('#sweep-form button[type=submit]');
    await page.waitForURL(/#\/sweeps\/[0-9a-f-]{36}$/);
    const sweepId = page.url().split('/').pop()!;
    await page.waitForSelector('#sweep-state[data-state="completed"]', { timeout: 60_000 });
    page.off('request', onRequest);
    // Shown live: the badge went from queued or running to completed without a reload.
    const badges = (await page.evaluate(() => window.__seen))
      .filter((s) => s.t >= submittedAt && s.sweep)
      .map((s) => s.sweep);
    expect(['queued', 'running']).toContain(badges[0]);
    expect(badges[badges.length - 1]).toBe('completed');
    expect(streams.map((u) => new URL(u).pathname)).toContain(`/v1/sweeps/${sweepId}/events`);
    expect(await attributes(page, '#trials tbody tr', 'data-rank')).toEqual(['1', '2']);
    expect(await attributes(page, '#trials tbody tr', 'data-state')).toEqual(['completed', 'completed']);
    const view = await new RunnerClient({ baseUrl: api.url }).getSweep(sweepId);
    expect(await attributes(page, '#trials tbody tr', 'data-id')).toEqual(view.trials.map((t) => t.id));
    const table = await page.textContent('#trials');
    expect(table).toContain('training.learningRate=0.03');
    expect(await page.textContent('#sweep-summary')).toContain('2 of 2 ended');
    await page.screenshot({ path: join(IMG_DIR, 'dashboard-sweep.png'), fullPage: true });

    // The sweeps page remembers it (this browser's localStorage); a trial links to its job page.
    await page.goto(`${api.url}/ui#/sweeps`);
    await page.waitForSelector(`#sweeps tr[data-id="${sweepId}"][data-state="completed"]`);
    await page.goto(`${api.url}/ui#/sweeps/${sweepId}`);
    await page.click(`#trials a[href="#/jobs/${view.trials[0].id}"]`);
    await page.waitForSelector('#job-state[data-state="completed"]');
  });

  test('a long sweep is cancelled from its page', async () => {
    const client = new RunnerClient({ baseUrl: api.url });
    const base = { ...CANONICAL_TRAIN_EXAMPLE, training: { ...CANONICAL_TRAIN_EXAMPLE.training, epochs: 2000 } };
    const sweep = await client.submitSweep({
      base,
      search: { grid: { 'training.learningRate': [0.01, 0.03] } },
      maxConcurrent: 1,
      metric: 'loss',
    });
    await page.goto(`${api.url}/ui#/sweeps/${sweep.id}`);
    await page.waitForSelector('#trials tr[data-state="running"]');
    await page.click('#cancel-sweep');
    await page.waitForSelector('#sweep-state[data-state="cancelled"]', { timeout: 30_000 });
    expect(await page.isDisabled('#cancel-sweep')).toBe(true);
    expect(await attributes(page, '#trials tbody tr', 'data-state')).toEqual(['cancelled', 'cancelled']);
  });

  test('a job submitted with a name, tags and a priority is found by the tag and name filters', async () => {
    const id = await submitFromForm(page, api.url, {
      'training.epochs': '1',
      name: 'ui tagged',
      tags: 'project=dashboard\nrun=a',
      priority: '2',
    });
    const view = await new RunnerClient({ baseUrl: api.url }).get(id);
    expect([view.name, view.tags, view.priority]).toEqual(['ui tagged', { project: 'dashboard', run: 'a' }, 2]);
    await page.goto(`${api.url}/ui#/jobs`);
    await page.waitForSelector('#job-filters');
    await page.fill('#job-filters [name="tag"]', 'project:dashboard');
    await page.click('#job-filters button[type=submit]');
    await page.waitForURL(/#\/jobs\?tag=project%3Adashboard$/);
    await page.waitForSelector(`#jobs tbody tr[data-id="${id}"]`);
    expect(await attributes(page, '#jobs tbody tr', 'data-id')).toEqual([id]);
    const row = await page.textContent(`#jobs tbody tr[data-id="${id}"]`);
    expect(row).toContain('project:dashboard');
    expect(row).toContain('ui tagged');
    await page.goto(`${api.url}/ui#/jobs?name=nobody`);
    await page.waitForSelector('#jobs tbody td.empty');
    await page.goto(`${api.url}/ui#/jobs?name=ui%20tagged`);
    await page.waitForSelector(`#jobs tbody tr[data-id="${id}"]`);
  });

  test('a model registered from the trained job is listed on the models page, its files downloadable', async () => {
    const client = new RunnerClient({ baseUrl: api.url });
    const version = await client.registerModel({ name: 'ui-sine', fromJob: trainId, description: 'browser test' });
    await client.setModelAlias('ui-sine', 'production', version.version);
    await page.goto(`${api.url}/ui#/models`);
    await page.waitForSelector('#models tr[data-name="ui-sine"]');
    expect(await page.textContent('#models tr[data-name="ui-sine"]')).toContain('production → 1');
    await page.click('#models a[href="#/models/ui-sine"]');
    await page.waitForSelector('#versions tr[data-version="1"]');
    expect(await page.textContent('#versions tr[data-version="1"]')).toContain('browser test');
    const file = version.files.find((f) => f.name === 'model.safetensors')!;
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.click('#versions tr[data-version="1"] button[data-file="model.safetensors"]'),
    ]);
    expect(download.suggestedFilename()).toBe('ui-sine-v1-model.safetensors');
    expect(readFileSync(await download.path()).length).toBe(file.size);
    await page.screenshot({ path: join(IMG_DIR, 'dashboard-models.png'), fullPage: true });
    expect(pageErrors).toEqual([]);
  });
});

suite('dashboard in Chromium, with API keys', () => {
  const key = randomBytes(24).toString('base64url');
  let api: ApiProcess;
  let browser: Browser;

  beforeAll(async () => {
    const hash = createHash('sha256').update(key).digest('hex');
    [api, browser] = await Promise.all([
      startApi({ API_KEYS: `acme:${hash}` }),
      chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] }),
    ] as const);
  });

  afterAll(async () => {
    await browser?.close();
    await api?.stop();
  });

  test('asks for a key once, sends it as a bearer token and never in a URL', async () => {
    const page = await browser.newPage();
    const requests: { url: string; auth?: string }[] = [];
    page.on('request', (r) => requests.push({ url: r.url(), auth: r.headers().authorization }));
    const files: Promise<{ sent: number; bytes: number }>[] = [];
    page.on('response', (r) => {
      if (!new URL(r.url()).pathname.startsWith('/ui')) return;
      files.push(r.body().then((b) => ({ sent: Number(r.headers()['content-length']), bytes: b.length })));
    });
    await page.goto(`${api.url}/ui`);
    await page.waitForSelector('#key-form');
    expect(await page.textContent('#key-form')).toContain('401 unauthorized: missing Authorization: Bearer <API key>');
    await page.fill('#key-form [name="key"]', key);
    await page.click('#key-form button[type=submit]');
    await page.waitForSelector('#jobs tbody td.empty');
    await page.goto(`${api.url}/ui#/workers`); // another page: no second prompt
    await page.waitForSelector('#workers tbody td.empty');
    expect(await page.$('#key-form')).toBeNull();
    const apiCalls = requests.filter((r) => new URL(r.url).pathname.startsWith('/v1/'));
    expect(apiCalls.filter((r) => r.auth === `Bearer ${key}`).length).toBeGreaterThanOrEqual(2);
    expect(requests.filter((r) => r.url.includes(key))).toEqual([]);
    const weight = await Promise.all(files);
    expect(weight.length).toBe(3); // the page, its script and its styles
    const sum = (k: 'sent' | 'bytes') => weight.reduce((a, w) => a + w[k], 0);
    process.stdout.write(`dashboard: page weight ${sum('bytes')} B (${sum('sent')} B sent gzipped) in 3 files\n`);
    // The page's own files need no key.
    expect(requests.filter((r) => /\/ui\/app\.(js|css)/.test(r.url)).every((r) => r.auth === undefined)).toBe(true);
  });
});
