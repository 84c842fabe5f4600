/**
 * `npm run bench:sessions`: the latency of one streaming-session step against a one-shot
 * `POST /v1/jobs/infer?wait=true` of the same model, in the same run, on the same stack (the
 * compiled api and one worker against Redis under a fresh prefix). The model is a trained ReLU-LSTM
 * with hidden size 64; each call feeds one time step of one sequence. Both paths are warmed first
 * (the worker holds the model for steps, the job engine for infer jobs), then measured in
 * alternating rounds so that a change of machine load hits both alike.
 *
 *   BENCH_STEPS=300 (calls per path), BENCH_ROUNDS=3, RELU_LSTM_BACKEND (default wasm), REDIS_URL.
 */
import { Redis } from 'ioredis';
import { fmt, machineDescription, percentile, table } from './runner/report';
import { startStack } from './runner/stack';

const HIDDEN = 64;

async function call(url: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

async function trainModel(api: string): Promise<string> {
  const x = Array.from({ length: 32 }, (_, n) => Array.from({ length: 8 }, (_, t) => [Math.sin(0.3 * (n + t))]));
  const y = x.map((s) => s.map(([v]) => [v * 0.5]));
  const r = await call(`${api}/v1/jobs/train`, {
    model: { inputSize: 1, hiddenSize: HIDDEN, numLayers: 1, activation: 'relu', outputSize: 1, head: 'manyToMany' },
    data: { inline: { x, y } },
    training: { epochs: 1, batchSize: 16, learningRate: 0.01, seed: 1 },
  });
  if (r.status !== 202) throw new Error(`train: ${r.status} ${JSON.stringify(r.json)}`);
  const id = r.json.id as string;
  for (;;) {
    const v = (await (await fetch(`${api}/v1/jobs/${id}`)).json()) as { state: string; error?: unknown };
    if (v.state === 'completed') return id;
    if (v.state === 'failed' || v.state === 'cancelled')
      throw new Error(`training ${v.state}: ${JSON.stringify(v.error)}`);
    await new Promise((res) => setTimeout(res, 200));
  }
}

async function timed(fn: () => Promise<void>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

async function main(): Promise<void> {
  const steps = Number(process.env.BENCH_STEPS ?? 300);
  const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
  const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const backend = process.env.RELU_LSTM_BACKEND || 'wasm';
  const probe = new Redis(redisUrl, { lazyConnect: true });
  await probe.connect();
  const machine = await machineDescription(probe);
  probe.disconnect();
  process.stderr.write(`starting the api and one worker (backend ${backend})...\n`);
  const stack = await startStack({ redisUrl, workers: 1, backend, api: true });
  try {
    const api = stack.apiUrl;
    const modelJobId = await trainModel(api);
    const open = await call(`${api}/v1/sessions`, { modelJobId });
    if (open.status !== 201) throw new Error(`open: ${open.status} ${JSON.stringify(open.json)}`);
    const sessionUrl = `${api}/v1/sessions/${open.json.id as string}/step`;
    let seq = 0;
    const input = (i: number) => [[[Math.sin(0.1 * i)]]];
    const sessionStep = async () => {
      const r = await call(sessionUrl, { seq, inputs: input(seq) });
      if (r.status !== 200) throw new Error(`step ${seq}: ${r.status} ${JSON.stringify(r.json)}`);
      seq++;
    };
    let n = 0;
    const inferOnce = async () => {
      const r = await call(`${api}/v1/jobs/infer?wait=true`, { modelJobId, inputs: input(n++) });
      if (r.status !== 200) throw new Error(`infer: ${r.status} ${JSON.stringify(r.json)}`);
    };
    for (let i = 0; i < 20; i++) {
      await sessionStep();
      await inferOnce();
    }
    const session: number[] = [];
    const infer: number[] = [];
    const per = Math.ceil(steps / rounds);
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < per; i++) session.push(await timed(sessionStep));
      for (let i = 0; i < per; i++) infer.push(await timed(inferOnce));
    }
    const row = (name: string, xs: number[]) => [
      name,
      String(xs.length),
      fmt(percentile(xs, 50), 2),
      fmt(percentile(xs, 90), 2),
      fmt(percentile(xs, 99), 2),
      fmt(xs.reduce((a, b) => a + b, 0) / xs.length, 2),
    ];
    const p50 = (xs: number[]) => percentile(xs, 50);
    const p99 = (xs: number[]) => percentile(xs, 99);
    console.log(machine);
    console.log(
      `backend ${backend}, hidden ${HIDDEN}, one time step of one sequence per call, warm model, one client at a time\n`,
    );
    console.log(
      table([
        ['path (ms per call)', 'calls', 'p50', 'p90', 'p99', 'mean'],
        row('session step  POST /v1/sessions/:id/step', session),
        row('one-shot      POST /v1/jobs/infer?wait=true', infer),
      ]),
    );
    console.log(
      `\nsession step is ${fmt(p50(infer) / p50(session), 1)}x faster at p50, ${fmt(p99(infer) / p99(session), 1)}x at p99` +
        ` (goal: p50 under 10 ms and at least 3x)`,
    );
  } finally {
    await stack.stop();
  }
}

main().catch((e) => {
  console.error((e as Error).stack ?? e);
  process.exit(1);
});
