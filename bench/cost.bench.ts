/**
 * Calibrates the job cost estimate (`estimateJobCost`, libs/jobs/src/cost.ts) against the real
 * engine: for each shape, forks a fresh `apps/worker/dist/engine/main.js` (the process the worker
 * runs jobs in), runs one job in it over the engine's IPC protocol, and prints the engine's peak
 * resident set (VmHWM from /proc) beside the estimate. Linux only; run after `npm run build`:
 *
 *   node bench/dist/cost.bench.js [--backend wasm|cpu] [--only NAME,...]
 */
import { fork } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import {
  contract,
  estimateJobCost,
  formatMb,
  type CostedJob,
  type InferPayloadInput,
  type ModelSpec,
  type TrainPayloadInput,
} from '@relu-lstm/jobs';

const ENGINE = path.resolve(__dirname, '../../apps/worker/dist/engine/main.js');

interface Shape {
  name: string;
  job: { type: 'train'; payload: TrainPayloadInput } | { type: 'infer'; payload: InferPayloadInput };
}

function train(name: string, model: Partial<ModelSpec>, samples: number, seqLen: number, batchSize: number): Shape {
  return {
    name,
    job: {
      type: 'train',
      payload: {
        model: { inputSize: 1, outputSize: 1, hiddenSize: 16, ...model },
        data: { synthetic: { kind: 'sine', samples, seqLen } },
        training: { epochs: 1, batchSize, optimizer: 'adam', checkpointEvery: 1 },
      },
    },
  };
}

/** An inline model of hidden size `h` (weights 0.01) over `b` x `t` steps of one feature. */
function infer(name: string, h: number, b: number, t: number): Shape {
  const full = (rows: number, cols: number) => Array.from({ length: rows }, () => new Array<number>(cols).fill(0.01));
  const stateDict = {
    weight_ih_l0: full(4 * h, 1),
    weight_hh_l0: full(4 * h, h),
    bias_ih_l0: new Array<number>(4 * h).fill(0),
    bias_hh_l0: new Array<number>(4 * h).fill(0),
    'head.weight': full(1, h),
    'head.bias': [0],
  };
  const inputs = Array.from({ length: b }, () => Array.from({ length: t }, (_, k) => [Math.sin(k / 10)]));
  return {
    name,
    job: {
      type: 'infer',
      payload: { model: { config: { inputSize: 1, hiddenSize: h, outputSize: 1 }, stateDict }, inputs },
    },
  };
}

const SHAPES: Shape[] = [
  train('train H16 L1 256x20 b32', {}, 256, 20, 32),
  train('train H256 L2 64x200 b64', { hiddenSize: 256, numLayers: 2 }, 64, 200, 64),
  train('train H1024 L1 16x50 b16', { hiddenSize: 1024 }, 16, 50, 16),
  train('train H512 L3 bi 32x100 b32', { hiddenSize: 512, numLayers: 3, bidirectional: true }, 32, 100, 32),
  train('train H64 L1 512x2000 b128', { hiddenSize: 64 }, 512, 2000, 128),
  infer('infer H16 24x10000', 16, 24, 10_000),
  infer('infer H16 24x100000', 16, 24, 100_000),
];

function peakRss(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

/** Runs one job in a fresh engine; resolves with its peak RSS and how the run ended. */
function measure(shape: Shape, backend: string | undefined): Promise<{ peak: number; ended: string; ms: number }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'cost-bench-'));
  const child = fork(ENGINE, [], { serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const started = performance.now();
  return new Promise<{ peak: number; ended: string; ms: number }>((resolve, reject) => {
    child.on('message', (m: { kind: string; error?: { message: string } }) => {
      if (m.kind === 'ready') {
        const payload =
          shape.job.type === 'train'
            ? contract.TrainPayload.parse(shape.job.payload)
            : contract.InferPayload.parse(shape.job.payload);
        const common = { runId: 'r1', jobId: '00000000-0000-4000-8000-000000000001', payload };
        child.send(
          shape.job.type === 'train'
            ? {
                kind: 'train',
                ...common,
                progressEvery: 1000,
                resumeFrom: null,
                elapsedBeforeMs: 0,
                divergence: { retries: 0, lrFactor: 0.5 },
              }
            : { kind: 'infer', ...common },
        );
      } else if (m.kind === 'fatal') {
        reject(new Error(m.error?.message));
      } else if (['trained', 'inferred', 'stopped', 'failed'].includes(m.kind)) {
        const peak = peakRss(child.pid!);
        child.kill('SIGKILL');
        resolve({
          peak,
          ended: m.kind === 'failed' ? `failed: ${m.error?.message}` : m.kind,
          ms: performance.now() - started,
        });
      }
    });
    child.on('exit', (code, signal) => reject(new Error(`engine exited (${signal ?? code})`)));
    child.send({ kind: 'init', init: { artifactDir: dir, datasetDir: dir, backend, modelCacheSize: 0 } });
  }).finally(() => rmSync(dir, { recursive: true, force: true }));
}

function costOf(shape: Shape): ReturnType<typeof estimateJobCost> {
  const job: CostedJob =
    shape.job.type === 'train'
      ? { type: 'train', payload: contract.TrainPayload.parse(shape.job.payload) }
      : {
          type: 'infer',
          payload: contract.InferPayload.parse(shape.job.payload),
          model: contract.ModelSpec.parse((shape.job.payload.model as { config: unknown }).config),
        };
  return estimateJobCost(job);
}

async function main(): Promise<void> {
  const arg = (name: string) => {
    const i = process.argv.indexOf(name);
    return i >= 0 ? process.argv[i + 1] : undefined;
  };
  const backend = arg('--backend');
  const only = arg('--only')?.split(',');
  console.log(`| shape | backend | estimate | measured peak RSS | estimate / measured | run |`);
  console.log(`|---|---|---|---|---|---|`);
  for (const shape of SHAPES.filter((s) => !only || only.some((o) => s.name.includes(o)))) {
    const est = costOf(shape);
    const r = await measure(shape, backend);
    const ratio = (est.memoryBytes / r.peak).toFixed(2);
    console.log(
      `| ${shape.name} | ${backend ?? 'auto'} | ${formatMb(est.memoryBytes)} | ${formatMb(r.peak)} | ${ratio} | ${r.ended}, ${(r.ms / 1000).toFixed(1)} s |`,
    );
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
