/**
 * `npm run bench:load`: an HTTP load run with autocannon against `POST /v1/jobs/infer` at a fixed
 * overall rate (default 500 requests/s for 25 s), with the api and real workers running against a
 * real Redis under a fresh prefix. Prints latency percentiles, the rate achieved and the status
 * codes (2xx, 429, other) separately; deletes every key under the prefix afterwards.
 */
import autocannon from 'autocannon';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { COMMON_ENV, readEnv } from '@relu-lstm/jobs';
import { addHeaderArg, intArg } from './runner/args';
import { TINY, tinyInferPayload } from './runner/payload';
import { BenchPaths, closedLoop } from './runner/paths';
import { cpuMsOfTree, fmt, loadAverage, machineDescription, table } from './runner/report';
import { startStack } from './runner/stack';

/** Length of the control run against GET /health. */
const CONTROL_SECONDS = 10;

interface Options {
  rate: number;
  duration: number;
  connections: number;
  workers: number;
  backend: string;
  redisUrl: string;
  headers: Record<string, string>;
  root: string | undefined;
  /** Also run GET /health under the same load pattern (the floor of the pattern on this machine). */
  control: boolean;
}

const HELP = `usage: npm run bench:load -- [options]
  --rate R          overall requests per second (autocannon overallRate; default 500)
  --duration S      seconds (default 25)
  --connections C   HTTP connections (default 50)
  --workers W       worker processes consuming meanwhile (default 2; 0 for none)
  --backend B       RELU_LSTM_BACKEND of the workers (default RELU_LSTM_BACKEND, else wasm)
  --redis URL       Redis (default REDIS_URL, else redis://127.0.0.1:6379); keys under a fresh prefix, deleted after
  --root DIR        run the compiled api and workers of another checkout (before/after comparisons)
  --header 'k: v'   extra request header (repeatable), e.g. an API key
  --no-control      skip the control run (GET /health under the same load pattern, 10 s)`;

function parseArgs(argv: string[]): Options {
  const o: Options = {
    rate: 500,
    duration: 25,
    connections: 50,
    workers: 2,
    backend: process.env.RELU_LSTM_BACKEND || 'wasm',
    redisUrl: readEnv({ REDIS_URL: COMMON_ENV.REDIS_URL }, process.env).REDIS_URL,
    headers: {},
    root: undefined,
    control: true,
  };
  const int = intArg;
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const v = argv[i + 1];
    switch (flag) {
      case '--rate':
        o.rate = int(flag, v, 1);
        i++;
        break;
      case '--duration':
        o.duration = int(flag, v, 1);
        i++;
        break;
      case '--connections':
        o.connections = int(flag, v, 1);
        i++;
        break;
      case '--workers':
        o.workers = int(flag, v, 0);
        i++;
        break;
      case '--backend':
        o.backend = v ?? '';
        i++;
        break;
      case '--redis':
        o.redisUrl = v ?? '';
        i++;
        break;
      case '--root':
        o.root = v;
        i++;
        break;
      case '--no-control':
        o.control = false;
        break;
      case '--header':
        addHeaderArg(o.headers, v);
        i++;
        break;
      case '--help':
      case '-h':
        console.log(HELP);
        process.exit(0);
      // falls through (exit)
      default:
        throw new Error(`unknown option ${flag}\n${HELP}`);
    }
  }
  return o;
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const payload = tinyInferPayload();
  const probe = new Redis(o.redisUrl, { maxRetriesPerRequest: 1, lazyConnect: true });
  await probe.connect();
  const machine = await machineDescription(probe);
  probe.disconnect();

  process.stderr.write(`starting the api and ${o.workers} worker process(es) (backend ${o.backend})...\n`);
  const stack = await startStack({
    redisUrl: o.redisUrl,
    workers: o.workers,
    backend: o.backend,
    api: true,
    root: o.root,
  });
  let result: autocannon.Result;
  let counts: Record<string, number> = {};
  let apiCpuMs: number | null = null;
  let control: autocannon.Result | null = null;
  try {
    // Warm the api's code paths (JIT, connection pools) before the measured run.
    const paths = new BenchPaths({
      redisUrl: o.redisUrl,
      prefix: stack.prefix,
      apiUrl: stack.apiUrl,
      payload,
      concurrency: 8,
      headers: o.headers,
    });
    try {
      await paths.ready();
      const w = await closedLoop(300, 8, () => paths.submitOnly());
      if (w.errors) process.stderr.write(`warm-up: ${w.errors} of ${w.jobs} failed; first: ${w.firstError}\n`);
    } finally {
      await paths.close();
    }
    process.stderr.write(
      `autocannon: POST /v1/jobs/infer at ${o.rate} requests/s for ${o.duration} s over ${o.connections} connections\n`,
    );
    const cpu0 = cpuMsOfTree(stack.pids.api!);
    result = await autocannon({
      url: new URL('/v1/jobs/infer', stack.apiUrl).toString(),
      method: 'POST',
      headers: { 'content-type': 'application/json', ...o.headers },
      body: JSON.stringify(payload),
      connections: o.connections,
      overallRate: o.rate,
      duration: o.duration,
      timeout: 10,
    });
    const cpu1 = cpuMsOfTree(stack.pids.api!);
    apiCpuMs = cpu0 !== null && cpu1 !== null ? cpu1 - cpu0 : null;
    // The control: the same arrival pattern against GET /health (one Redis PING, no body, no job),
    // while the workers are still draining the backlog. autocannon starts every connection at once
    // and paces each one alone (overallRate / connections per second), so requests arrive in bursts
    // of up to `connections`; what /health's latency shows is the floor of this load pattern on
    // this machine, whatever the route does.
    if (o.control) {
      process.stderr.write(
        `control: GET /health at ${o.rate} requests/s for ${CONTROL_SECONDS} s over ${o.connections} connections\n`,
      );
      control = await autocannon({
        url: new URL('/health', stack.apiUrl).toString(),
        connections: o.connections,
        overallRate: o.rate,
        duration: Math.min(CONTROL_SECONDS, o.duration),
        timeout: 10,
      });
    }
    const redis = new Redis(o.redisUrl, { maxRetriesPerRequest: null });
    const queue = new Queue('cpu', { connection: redis, prefix: stack.prefix });
    counts = await queue.getJobCounts('wait', 'active', 'delayed', 'completed', 'failed');
    await queue.close();
    redis.disconnect();
  } finally {
    await stack.stop();
  }

  const codes = result.statusCodeStats ?? {};
  const count = (pred: (code: number) => boolean) =>
    Object.entries(codes).reduce((s, [code, v]) => s + (pred(Number(code)) ? (v?.count ?? 0) : 0), 0);
  const ok = count((c) => c >= 200 && c < 300);
  const limited = count((c) => c === 429);
  const other = count((c) => !(c >= 200 && c < 300) && c !== 429);
  const otherCodes = Object.entries(codes)
    .filter(([c]) => !(Number(c) >= 200 && Number(c) < 300) && Number(c) !== 429)
    .map(([c, v]) => `${c}: ${v?.count ?? 0}`);
  const l = result.latency;
  const sent = ok + limited + other;
  console.log(
    [
      machine,
      `load average at end ${loadAverage()}`,
      `api: 1 process; ${o.workers} worker process(es) consuming meanwhile (backend ${o.backend}); Redis under a fresh prefix`,
      `load: autocannon ${o.connections} connections, overallRate ${o.rate}/s, ${o.duration} s; body: inline-model infer, hidden ${TINY.hiddenSize}, seq ${TINY.seqLen} (${JSON.stringify(payload).length} bytes)`,
      '',
      table([
        ['latency ms', 'p50', 'p90', 'p99', 'p99.9', 'max', 'mean'],
        ['POST /v1/jobs/infer', fmt(l.p50), fmt(l.p90), fmt(l.p99), fmt(l.p99_9), fmt(l.max), fmt(l.mean)],
        ...(control
          ? [
              [
                'GET /health (control)',
                fmt(control.latency.p50),
                fmt(control.latency.p90),
                fmt(control.latency.p99),
                fmt(control.latency.p99_9),
                fmt(control.latency.max),
                fmt(control.latency.mean),
              ],
            ]
          : []),
      ]),
      '',
      table([
        ['requests', 'per second', 'total', '2xx', '429', 'other status', 'errors', 'timeouts'],
        [
          'POST /v1/jobs/infer',
          fmt(sent / result.duration),
          String(sent),
          String(ok),
          String(limited),
          String(other),
          String(result.errors),
          String(result.timeouts),
        ],
      ]),
      apiCpuMs !== null
        ? `api CPU time: ${fmt(apiCpuMs / sent, 2)} ms per request (user+system of the api process over the run, ${fmt((apiCpuMs / 1000 / result.duration) * 100, 0)}% of one core)`
        : '',
      otherCodes.length ? `other status codes: ${otherCodes.join(', ')}` : '',
      `queue cpu at the end: ${Object.entries(counts)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')} (jobs the workers had not run yet were deleted with the prefix)`,
    ].join('\n'),
  );
  if (other > 0 || result.errors > 0) process.exitCode = 1;
}

main().catch((e) => {
  console.error((e as Error).stack ?? e);
  process.exit(1);
});
