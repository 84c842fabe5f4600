/**
 * `npm run bench:runner`: what the runner itself costs per job. Thousands of tiny inference jobs go
 * through the REST API and, for comparison, straight through BullMQ, all consumed by the same real
 * worker processes against a real Redis; the tables give jobs/s and submit-to-result latency side
 * by side, with ratios against raw BullMQ. See bench/README.md ("Runner") for what each column is.
 */
import { Redis } from 'ioredis';
import { COMMON_ENV, readEnv } from '@relu-lstm/jobs';
import { addHeaderArg, intArg } from './runner/args';
import { BenchPaths, PATH_NAMES, closedLoop, type LoopResult, type PathName } from './runner/paths';
import { TINY, tinyInferPayload } from './runner/payload';
import { cpuMsOfTree, fmt, loadAverage, machineDescription, median, percentile, table } from './runner/report';
import { startStack } from './runner/stack';

interface Options {
  jobs: number;
  concurrency: number;
  latencyJobs: number;
  workers: number;
  block: number;
  warmup: number;
  paths: PathName[];
  backend: string;
  redisUrl: string;
  hidden: number;
  seq: number;
  headers: Record<string, string>;
  root: string | undefined;
}

const HELP = `usage: npm run bench:runner -- [options]
  --jobs N           jobs per path in the throughput phase (default 1500)
  --concurrency C    jobs in flight in the throughput phase (default 32)
  --latency-jobs M   jobs per path in the latency phase, one at a time, paths taking turns (default 150; 0 skips it)
  --workers W        worker processes (default 2)
  --block B          the throughput phase runs in blocks of B jobs, paths taking turns (default 250)
  --warmup K         untimed jobs per path first (default 100)
  --paths a,b        subset of ${PATH_NAMES.join(',')} (default all; bullmq always runs, as the baseline)
  --backend B        RELU_LSTM_BACKEND of the workers (default RELU_LSTM_BACKEND, else wasm)
  --redis URL        Redis (default REDIS_URL, else redis://127.0.0.1:6379); keys under a fresh prefix, deleted after
  --hidden H --seq T size of the tiny model and its input (default ${TINY.hiddenSize} and ${TINY.seqLen})
  --root DIR        run the compiled api and workers of another checkout (before/after comparisons)
  --header 'k: v'    extra header on REST requests (repeatable), e.g. an API key`;

function parseArgs(argv: string[]): Options {
  const o: Options = {
    jobs: 1500,
    concurrency: 32,
    latencyJobs: 150,
    workers: 2,
    block: 250,
    warmup: 100,
    paths: [...PATH_NAMES],
    backend: process.env.RELU_LSTM_BACKEND || 'wasm',
    redisUrl: readEnv({ REDIS_URL: COMMON_ENV.REDIS_URL }, process.env).REDIS_URL,
    hidden: TINY.hiddenSize,
    seq: TINY.seqLen,
    headers: {},
    root: undefined,
  };
  const int = intArg;
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const v = argv[i + 1];
    switch (flag) {
      case '--jobs':
        o.jobs = int(flag, v, 1);
        i++;
        break;
      case '--concurrency':
        o.concurrency = int(flag, v, 1);
        i++;
        break;
      case '--latency-jobs':
        o.latencyJobs = int(flag, v, 0);
        i++;
        break;
      case '--workers':
        o.workers = int(flag, v, 1);
        i++;
        break;
      case '--block':
        o.block = int(flag, v, 1);
        i++;
        break;
      case '--warmup':
        o.warmup = int(flag, v, 0);
        i++;
        break;
      case '--hidden':
        o.hidden = int(flag, v, 1);
        i++;
        break;
      case '--seq':
        o.seq = int(flag, v, 1);
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
      case '--paths': {
        const names = (v ?? '')
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean);
        const bad = names.filter((n) => !(PATH_NAMES as readonly string[]).includes(n));
        if (bad.length || !names.length)
          throw new Error(`--paths: expected a comma list of ${PATH_NAMES.join(', ')}, got ${JSON.stringify(v)}`);
        o.paths = PATH_NAMES.filter((p) => p === 'bullmq' || names.includes(p));
        i++;
        break;
      }
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

interface PathRuns {
  throughput: LoopResult[];
  latency: LoopResult[];
}

/** Rotates `xs` by `k`, so every path goes first in some round (drift on a shared machine hits all alike). */
const rotate = <T>(xs: T[], k: number): T[] => xs.map((_, i) => xs[(i + k) % xs.length]);

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const payload = tinyInferPayload({ ...TINY, hiddenSize: o.hidden, seqLen: o.seq });
  const probe = new Redis(o.redisUrl, { maxRetriesPerRequest: 1, lazyConnect: true });
  await probe.connect();
  const machine = await machineDescription(probe);
  probe.disconnect();

  const needsApi = o.paths.some((p) => p.startsWith('rest'));
  process.stderr.write(
    `starting ${o.workers} worker process(es) (backend ${o.backend})${needsApi ? ' and the api' : ''}...\n`,
  );
  const stack = await startStack({
    redisUrl: o.redisUrl,
    workers: o.workers,
    backend: o.backend,
    api: needsApi,
    root: o.root,
  });
  const paths = new BenchPaths({
    redisUrl: o.redisUrl,
    prefix: stack.prefix,
    apiUrl: stack.apiUrl,
    payload,
    concurrency: o.concurrency,
    headers: o.headers,
  });
  const runs = new Map<PathName, PathRuns>(o.paths.map((p) => [p, { throughput: [], latency: [] }]));
  const started = Date.now();
  const sumCpu = (pids: number[]) =>
    pids.reduce<number | null>((s, p) => (s === null ? null : ((c) => (c === null ? null : s + c))(cpuMsOfTree(p))), 0);
  const cpu = () => ({
    api: stack.pids.api === null ? null : cpuMsOfTree(stack.pids.api),
    workers: sumCpu(stack.pids.workers),
  });
  try {
    await paths.ready();
    for (const name of o.paths) {
      if (o.warmup === 0) break;
      process.stderr.write(`warm-up: ${o.warmup} jobs via ${name}\n`);
      const w = await closedLoop(o.warmup, Math.min(o.concurrency, 8), paths.path(name).run);
      if (w.errors) throw new Error(`warm-up via ${name}: ${w.errors} of ${w.jobs} failed; first: ${w.firstError}`);
    }
    // Throughput: blocks of `block` jobs, one block per path per round, rotating which path goes
    // first, so the load of a shared machine drifts over every path alike.
    const rounds = Math.ceil(o.jobs / o.block);
    for (let round = 0; round < rounds; round++) {
      const n = Math.min(o.block, o.jobs - round * o.block);
      for (const name of rotate(o.paths, round)) {
        const t = await closedLoop(n, o.concurrency, paths.path(name).run, cpu);
        runs.get(name)!.throughput.push(t);
        process.stderr.write(
          `throughput round ${round + 1}/${rounds} ${name}: ${fmt(t.jobs / (t.wallMs / 1000))} jobs/s, p50 ${fmt(percentile(t.latencies, 50))} ms${t.errors ? `, ${t.errors} errors (${t.firstError})` : ''}\n`,
        );
      }
      paths.watcher.forgetUnclaimed();
    }
    // Latency: one job at a time, the paths taking turns job by job (same conditions for each).
    for (let i = 0; i < o.latencyJobs; i++) {
      for (const name of rotate(o.paths, i)) runs.get(name)!.latency.push(await closedLoop(1, 1, paths.path(name).run));
      if (i % 50 === 49) {
        paths.watcher.forgetUnclaimed();
        process.stderr.write(`latency: ${i + 1}/${o.latencyJobs} jobs per path\n`);
      }
    }
  } finally {
    await paths.close().catch(() => undefined);
    await stack.stop();
  }

  const pooled = (rs: LoopResult[]) => rs.flatMap((r) => r.latencies);
  const errorsOf = (rs: LoopResult[]) => rs.reduce((s, r) => s + r.errors, 0);
  const rateOf = (r: LoopResult) => r.jobs / (r.wallMs / 1000);
  const base = runs.get('bullmq')!;
  const baseRate = median(base.throughput.map(rateOf));
  const baseP50Lat = percentile(pooled(base.latency), 50);
  const baseP50Tp = percentile(pooled(base.throughput), 50);

  const tp: string[][] = [
    [
      'path',
      'jobs/s',
      'min-max',
      'ratio vs bullmq',
      'p50 ms',
      'p99 ms',
      'p50 - bullmq ms',
      'api CPU ms/job',
      'worker CPU ms/job',
      'errors',
    ],
  ];
  const perJob = (rs: LoopResult[], k: 'api' | 'workers') => {
    const xs = rs.map((r) => r.cpuMs[k]);
    return xs.every((x) => x !== null) ? fmt(median(xs.map((x, i) => x! / rs[i].jobs)), 2) : '-';
  };
  const lat: string[][] = [['path', 'p50 ms', 'p99 ms', 'p50 - bullmq ms', 'p99 - bullmq ms', 'ratio p50', 'errors']];
  const baseP99Lat = percentile(pooled(base.latency), 99);
  for (const [name, r] of runs) {
    const rates = r.throughput.map(rateOf);
    const rate = median(rates);
    const tpl = pooled(r.throughput);
    tp.push([
      name,
      fmt(rate),
      `${fmt(Math.min(...rates), 0)}-${fmt(Math.max(...rates), 0)}`,
      `${fmt(rate / baseRate, 2)}x`,
      fmt(percentile(tpl, 50)),
      fmt(percentile(tpl, 99)),
      `${percentile(tpl, 50) - baseP50Tp >= 0 ? '+' : ''}${fmt(percentile(tpl, 50) - baseP50Tp)}`,
      name.startsWith('rest') ? perJob(r.throughput, 'api') : '-',
      perJob(r.throughput, 'workers'),
      String(errorsOf(r.throughput)),
    ]);
    if (o.latencyJobs > 0) {
      const l = pooled(r.latency);
      const d50 = percentile(l, 50) - baseP50Lat;
      const d99 = percentile(l, 99) - baseP99Lat;
      lat.push([
        name,
        fmt(percentile(l, 50)),
        fmt(percentile(l, 99)),
        `${d50 >= 0 ? '+' : ''}${fmt(d50)}`,
        `${d99 >= 0 ? '+' : ''}${fmt(d99)}`,
        `${fmt(percentile(l, 50) / baseP50Lat, 2)}x`,
        String(errorsOf(r.latency)),
      ]);
    }
  }

  const out = [
    machine,
    `load average at end ${loadAverage()}; run took ${fmt((Date.now() - started) / 1000, 0)} s`,
    `runner: ${o.workers} worker process(es), backend ${o.backend}, queues cpu,any; api: 1 process; Redis ${o.redisUrl.replace(/\/\/[^@]*@/, '//')} under a fresh prefix${o.root ? `; api and workers from ${o.root}` : ''}`,
    `job: inline-model infer, input ${TINY.inputSize}, hidden ${o.hidden}, 1 layer, seq ${o.seq}, batch ${TINY.batch}, device cpu`,
    `${o.warmup} warm-up jobs per path first`,
    '',
    `throughput: ${o.jobs} jobs per path in blocks of ${o.block} (paths take turns block by block), ${o.concurrency} in flight (closed loop);`,
    `  jobs/s: median over the blocks (min-max beside it); latencies over all jobs; CPU: user+system time of the processes per job`,
    table(tp),
  ];
  if (o.latencyJobs > 0) {
    out.push(
      '',
      `latency: ${o.latencyJobs} jobs per path, one at a time, paths taking turns job by job (submit-to-result with an idle queue)`,
      table(lat),
    );
  }
  for (const [name, r] of runs) {
    const first = [...r.throughput, ...r.latency].find((x) => x.firstError)?.firstError;
    if (first) out.push(`errors via ${name}, the first: ${first}`);
  }
  console.log(out.join('\n'));
  const failed = [...runs.values()].some((r) => errorsOf(r.throughput) + errorsOf(r.latency) > 0);
  if (failed) process.exitCode = 1;
}

main().catch((e) => {
  console.error((e as Error).stack ?? e);
  process.exit(1);
});
