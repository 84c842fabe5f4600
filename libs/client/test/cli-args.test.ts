import { parseCliArgs, specToSubmission, UsageError } from '@relu-lstm/client';
import { bar, fractionDone, metricText, num, planFromPayload, ProgressPrinter } from '../src/cli/progress';
import { CANONICAL_TRAIN_EXAMPLE } from '@relu-lstm/jobs';

describe('parseCliArgs', () => {
  test('defaults: RELU_LSTM_URL, RELU_LSTM_API_KEY, else http://127.0.0.1:3000 and no key', () => {
    expect(parseCliArgs(['status', 'abc'], {})).toEqual({
      command: { name: 'status', id: 'abc' },
      url: 'http://127.0.0.1:3000',
      apiKey: null,
      json: false,
    });
    const env = { RELU_LSTM_URL: 'http://api:3000', RELU_LSTM_API_KEY: 'k1' };
    expect(parseCliArgs(['workers'], env)).toMatchObject({ url: 'http://api:3000', apiKey: 'k1' });
    expect(
      parseCliArgs(['workers', '--url', 'https://x.example/runner', '--api-key', 'k2', '--json'], env),
    ).toMatchObject({
      url: 'https://x.example/runner',
      apiKey: 'k2',
      json: true,
    });
  });

  test('submit options', () => {
    expect(parseCliArgs(['submit', 'spec.json', '--watch']).command).toEqual({
      name: 'submit',
      spec: 'spec.json',
      as: null,
      watch: true,
      wait: false,
      idempotencyKey: null,
      job: {},
    });
    expect(parseCliArgs(['submit', '-', '-w', '--infer', '--wait', '--idempotency-key', 'k']).command).toEqual({
      name: 'submit',
      spec: '-',
      as: 'infer',
      watch: true,
      wait: true,
      idempotencyKey: 'k',
      job: {},
    });
    const labelled = ['submit', 's.json', '--name', 'sine 3', '--tag', 'team=ml', '--tag', 'lr=0.1', '--priority', '2'];
    expect(parseCliArgs(labelled).command).toMatchObject({
      job: { name: 'sine 3', tags: { team: 'ml', lr: '0.1' }, priority: 2 },
    });
  });

  test('artifacts, list, help', () => {
    expect(parseCliArgs(['artifacts', 'id1', '-o', 'out']).command).toEqual({
      name: 'artifacts',
      id: 'id1',
      out: 'out',
    });
    expect(parseCliArgs(['artifacts', 'id1']).command).toEqual({ name: 'artifacts', id: 'id1', out: null });
    expect(parseCliArgs(['list', '--state', 'running', '--limit', '5']).command).toEqual({
      name: 'list',
      state: 'running',
      limit: 5,
      filters: {},
    });
    const search = ['list', '--type', 'train', '--name', 'n', '--tag', 'a=1', '--tag', 'b:2', '--since', '2026-01-02'];
    expect(parseCliArgs(search).command).toEqual({
      name: 'list',
      state: null,
      limit: null,
      filters: { type: 'train', name: 'n', tags: { a: '1', b: '2' }, since: Date.parse('2026-01-02') },
    });
    expect(parseCliArgs([]).command).toEqual({ name: 'help' });
    expect(parseCliArgs(['submit', '--help']).command).toEqual({ name: 'help' });
  });

  test.each([
    [['frobnicate'], /unknown command "frobnicate"/],
    [['status'], /'status' takes <id>, got none/],
    [['status', 'a', 'b'], /'status' takes <id>, got "a" "b"/],
    [['workers', 'x'], /'workers' takes no arguments/],
    [['status', 'a', '--watch'], /--watch is not an option of 'status'/],
    [['submit', 's.json', '--nope'], /Unknown option '--nope'/],
    [['submit', 's.json', '--train', '--infer'], /exclude each other/],
    [['submit', 's.json', '--train', '--wait'], /--wait is for infer jobs/],
    [['list', '--state', 'done'], /--state: expected one of queued, running, completed, failed, cancelled/],
    [['list', '--limit', '0'], /--limit: expected a positive integer/],
    [['list', '--type', 'fit'], /--type: expected one of train, infer/],
    [['list', '--tag', 'novalue'], /--tag: expected key=value/],
    [['list', '--since', 'yesterday'], /--since: expected an ISO 8601 date or milliseconds/],
    [['submit', 's.json', '--priority', '11'], /--priority: expected an integer from 1 \(highest\) to 10/],
    [['list', '--priority', '1'], /--priority is not an option of 'list'/],
    [['status', 'a', '--url', 'ftp://x'], /--url: expected an http\(s\) URL/],
    [['status', 'a', '--url'], /argument missing/],
  ])('%j is a usage error', (argv, message) => {
    expect(() => parseCliArgs(argv as string[])).toThrow(UsageError);
    expect(() => parseCliArgs(argv as string[])).toThrow(message);
  });
});

describe('specToSubmission', () => {
  test('the type from a flag, a "type" field (removed from the payload), or the shape', () => {
    expect(specToSubmission({ type: 'train', model: {} }, null)).toEqual({ type: 'train', payload: { model: {} } });
    expect(specToSubmission({ training: {} }, null).type).toBe('train');
    expect(specToSubmission({ inputs: [] }, null).type).toBe('infer');
    expect(specToSubmission({ inputs: [] }, 'train').type).toBe('train'); // the flag wins over the shape
  });
  test('errors', () => {
    expect(() => specToSubmission([], null)).toThrow(/a JSON object/);
    expect(() => specToSubmission({ model: {} }, null)).toThrow(/cannot tell the job type/);
    expect(() => specToSubmission({ type: 'predict' }, null)).toThrow(/"type" must be "train" or "infer"/);
    expect(() => specToSubmission({ type: 'infer', inputs: [] }, 'train')).toThrow(/--train contradicts/);
  });
});

describe('progress formatting', () => {
  const metric = {
    type: 'metric' as const,
    at: 0,
    epoch: 1,
    step: 12,
    loss: 0.012345,
    valLoss: null,
    gradNorm: 0.5,
    samplesPerSec: 1234.5,
    elapsedMs: 3400,
  };

  test('the plan from a train payload: 256 sine samples in batches of 32 -> 8 steps per epoch', () => {
    expect(planFromPayload(CANONICAL_TRAIN_EXAMPLE)).toEqual({ epochs: 3, stepsPerEpoch: 8 });
    expect(
      planFromPayload({
        ...CANONICAL_TRAIN_EXAMPLE,
        training: { ...CANONICAL_TRAIN_EXAMPLE.training, validationSplit: 0.25 },
      }),
    ).toEqual({ epochs: 3, stepsPerEpoch: 6 });
    expect(planFromPayload({ ...CANONICAL_TRAIN_EXAMPLE, data: { datasetId: 'x' } })).toEqual({
      epochs: 3,
      stepsPerEpoch: null,
    });
    expect(planFromPayload({ inputs: [] })).toEqual({ epochs: null, stepsPerEpoch: null });
  });

  test('fraction by steps when steps per epoch are known, by epochs otherwise', () => {
    expect(fractionDone(metric, { epochs: 3, stepsPerEpoch: 8 })).toBeCloseTo(0.5);
    expect(fractionDone({ ...metric, epochEnd: true }, { epochs: 4, stepsPerEpoch: null })).toBeCloseTo(0.5);
    expect(fractionDone(metric, { epochs: null, stepsPerEpoch: null })).toBeNull();
    expect(bar(0.5, 10)).toBe('[#####-----]  50%');
    expect(bar(null)).toBe('');
  });

  test('numbers and the metric line', () => {
    expect([num(0.012345), num(1234.5), num(1e-5), num(123456), num(null), num(0)]).toEqual([
      '0.01235',
      '1235',
      '1.00e-5',
      '1.23e+5',
      '-',
      '0',
    ]);
    expect(metricText(metric, { epochs: 3, stepsPerEpoch: 8 })).toBe(
      'epoch 2/3 step 12 loss 0.01235 |g| 0.5 1235 samples/s 3.4s',
    );
  });

  test('on a TTY the bar is redrawn in place and other lines go above it; plain lines otherwise', () => {
    const tty = {
      text: '',
      isTTY: true,
      columns: 200,
      write(s: string) {
        this.text += s;
      },
    };
    const p = new ProgressPrinter(tty, { epochs: 3, stepsPerEpoch: 8 });
    p.event(metric);
    p.event({ type: 'log', at: 0, level: 'info', message: 'checkpoint' });
    p.event({ ...metric, step: 24, epoch: 2, epochEnd: true });
    p.finish();
    expect(tty.text).toBe(
      '\r\x1b[2K[##########----------]  50% epoch 2/3 step 12 loss 0.01235 |g| 0.5 1235 samples/s 3.4s' +
        '\r\x1b[2Kinfo: checkpoint\n' +
        '\r\x1b[2K[##########----------]  50% epoch 2/3 step 12 loss 0.01235 |g| 0.5 1235 samples/s 3.4s' +
        '\r\x1b[2K[####################] 100% epoch 3/3 step 24 loss 0.01235 |g| 0.5 1235 samples/s 3.4s\n',
    );
    const plain = {
      text: '',
      write(s: string) {
        this.text += s;
      },
    };
    const q = new ProgressPrinter(plain, { epochs: null, stepsPerEpoch: null });
    q.event({ type: 'state', at: 0, state: 'running', attempt: 1, workerId: 'w1' });
    q.event(metric);
    expect(plain.text).toBe('running (attempt 1) on w1\nepoch 2 step 12 loss 0.01235 |g| 0.5 1235 samples/s 3.4s\n');
  });

  test('steps per epoch are learned from the first finished epoch when the payload does not tell', () => {
    const out = {
      text: '',
      write(s: string) {
        this.text += s;
      },
    };
    const p = new ProgressPrinter(out, { epochs: 2, stepsPerEpoch: null });
    p.event({ ...metric, epoch: 0, step: 10, epochEnd: true });
    expect(p.plan.stepsPerEpoch).toBe(10);
    p.event({ ...metric, epoch: 1, step: 15 });
    expect(out.text.split('\n')[1]).toMatch(/^\[###############-----\] {2}75% epoch 2\/2 step 15 /);
  });
});
