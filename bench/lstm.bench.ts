/**
 * ReluLstm vs a stacked tf.layers.lstm of the same size, on the same backend and in the same process,
 * with PyTorch (one thread) as an outside reference: median milliseconds of inference (forward only,
 * no tape) and of one training step (forward, MSE over all outputs, backward, SGD update), kernels per
 * time step and layer, and the memory of a training step. Warmup first, then interleaved repetitions
 * (the order of the two alternates every rep) so drift on a shared machine hits both alike.
 * See bench/README.md.
 *
 *   npm run bench                       the standard suite: cpu S, wasm M, wasm L
 *   npm run bench -- [--backend wasm|cpu|tensorflow|auto] [--config S|M|L[,..]] [--reps N] [--warmup N]
 */
import { type ChildProcessByStdio, execFileSync, spawn } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { createInterface } from 'node:readline';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import {
  ReluLstm,
  initBackend,
  lstmKernelPath,
  resolveBackendPreference,
  setLstmKernelPath,
  type BackendInfo,
  type BackendPreference,
} from '@relu-lstm/lstm';
import { intArg } from './runner/args';

interface BenchConfig {
  batch: number;
  seq: number;
  input: number;
  hidden: number;
  layers: number;
}

const CONFIGS: Record<string, BenchConfig> = {
  S: { batch: 16, seq: 50, input: 16, hidden: 64, layers: 1 },
  M: { batch: 32, seq: 100, input: 32, hidden: 128, layers: 2 },
  L: { batch: 64, seq: 200, input: 64, hidden: 256, layers: 2 },
};

/** What `npm run bench` runs with no --backend, no --config and no RELU_LSTM_BACKEND. */
const SUITE: Array<{ backend: BackendPreference; config: string }> = [
  { backend: 'cpu', config: 'S' },
  { backend: 'wasm', config: 'M' },
  { backend: 'wasm', config: 'L' },
];

const USAGE =
  'usage: npm run bench -- [--backend wasm|cpu|tensorflow|auto] [--config S|M|L[,S|M|L...]] [--reps N] [--warmup N] [--no-pytorch]\n' +
  '  no --backend, --config or RELU_LSTM_BACKEND: the suite cpu S, wasm M, wasm L\n' +
  '  --backend    default: RELU_LSTM_BACKEND, else auto\n' +
  '  --config     default: M, or S on the cpu backend (tf.layers takes ~9 s per step at M there)\n' +
  '  --reps       timed repetitions per task and implementation (default 5)\n' +
  '  --warmup     untimed repetitions first, the first one profiled (default 1, at least 1)\n' +
  '  --no-pytorch skip the PyTorch reference (bench/pytorch_reference.py)';

interface Args {
  runs: Array<{ backend: BackendPreference; config: string | undefined }>;
  reps: number;
  warmup: number;
  pytorch: boolean;
}

function parseCli(argv: string[]): Args {
  const { values } = parseArgs({
    args: argv,
    options: {
      backend: { type: 'string' },
      config: { type: 'string' },
      reps: { type: 'string' },
      warmup: { type: 'string' },
      'no-pytorch': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const count = (name: string, raw: string | undefined, dflt: number, min: number): number =>
    raw === undefined ? dflt : intArg(`--${name}`, raw, min);
  const configs = values.config?.split(',').map((c) => c.trim().toUpperCase());
  for (const c of configs ?? []) {
    if (!(c in CONFIGS))
      throw new Error(`--config: expected one of ${Object.keys(CONFIGS).join(', ')}, got ${JSON.stringify(c)}`);
  }
  const envSet = (process.env.RELU_LSTM_BACKEND ?? '').trim() !== '';
  const runs =
    values.backend === undefined && configs === undefined && !envSet
      ? SUITE
      : (configs ?? [undefined]).map((config) => ({
          backend: resolveBackendPreference(values.backend),
          config,
        }));
  return {
    runs,
    reps: count('reps', values.reps, 5, 1),
    warmup: count('warmup', values.warmup, 1, 1),
    pytorch: !values['no-pytorch'],
  };
}

/**
 * One implementation under test: its two timed tasks and its teardown. A task that times itself (the
 * PyTorch ones, timed inside Python) returns its milliseconds; otherwise the caller times the call.
 */
interface Contender {
  name: string;
  infer(): Promise<number | void>;
  train(): Promise<number | void>;
  dispose(): void;
}

const LEARNING_RATE = 1e-3;

function mse(pred: tf.Tensor, target: tf.Tensor): tf.Scalar {
  return tf.mean(tf.squaredDifference(pred, target));
}

function ours(cfg: BenchConfig, x: tf.Tensor3D, y: tf.Tensor3D): Contender {
  const lstm = new ReluLstm({
    inputSize: cfg.input,
    hiddenSize: cfg.hidden,
    numLayers: cfg.layers,
    batchFirst: true,
    activation: 'relu',
    recurrentActivation: 'sigmoid',
    seed: 1,
  });
  const vars = [...lstm.parameters().values()];
  const opt = tf.train.sgd(LEARNING_RATE);
  return {
    name: 'ReluLstm',
    async infer() {
      const out = tf.tidy(() => lstm.forward(x).output);
      await out.data();
      out.dispose();
    },
    async train() {
      const loss = opt.minimize(() => mse(lstm.forward(x, undefined, { training: true }).output, y), true, vars);
      await loss!.data();
      loss!.dispose();
    },
    dispose() {
      opt.dispose();
      lstm.dispose();
    },
  };
}

function theirs(cfg: BenchConfig, x: tf.Tensor3D, y: tf.Tensor3D): Contender {
  const model = tf.sequential();
  for (let l = 0; l < cfg.layers; l++) {
    model.add(
      tf.layers.lstm({
        units: cfg.hidden,
        activation: 'relu',
        recurrentActivation: 'sigmoid',
        returnSequences: true,
        // glorotUniform instead of the default orthogonal: same speed, without the slow QR at build time.
        recurrentInitializer: 'glorotUniform',
        ...(l === 0 ? { inputShape: [cfg.seq, cfg.input] } : {}),
      }),
    );
  }
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const opt = tf.train.sgd(LEARNING_RATE);
  return {
    name: 'tf.layers',
    async infer() {
      const out = model.predict(x) as tf.Tensor;
      await out.data();
      out.dispose();
    },
    async train() {
      const loss = opt.minimize(() => mse(model.apply(x, { training: true }) as tf.Tensor, y), true, vars);
      await loss!.data();
      loss!.dispose();
    },
    dispose() {
      opt.dispose();
      model.dispose();
    },
  };
}

const TASKS = ['infer', 'train'] as const;
type Task = (typeof TASKS)[number];
const TASK_LABEL: Record<Task, string> = {
  infer: 'inference (forward, no tape)',
  train: 'train step (fwd+MSE+bwd+SGD)',
};

/** Kernels launched by one run of each task, and the tensor memory a training step peaks at. */
interface Profiled {
  kernels: Record<Task, number>;
  /** tf.profile peakBytes minus the bytes held before the step. */
  trainPeakBytes: number;
}

async function profileContender(c: Contender): Promise<Profiled> {
  // tf.profile returns the same info object every call: read each one before the next profile.
  const infer = (await tf.profile(() => c.infer())).kernels.length;
  const start = tf.memory().numBytes;
  const tr = await tf.profile(() => c.train());
  return { kernels: { infer, train: tr.kernels.length }, trainPeakBytes: tr.peakBytes - start };
}

/** Kernel counts of one call of each task: per time step and layer, and all-in. */
interface KernelCounts {
  /** Kernels added by one more time step in one layer: the loop body alone. */
  perStep: Record<Task, number>;
  /** All kernels of one call (loss, SGD update and per-call set-up included) / (seq x layers). */
  allIn: Record<Task, number>;
}

/**
 * Counts kernels with tf.profile at tiny sizes (batch 2, input 3, hidden 4: the count depends only on
 * seq and layers) at seq and 2 x seq, so the loop body per step is the difference / (seq x layers).
 */
async function countKernels(
  make: (cfg: BenchConfig, x: tf.Tensor3D, y: tf.Tensor3D) => Contender,
  cfg: BenchConfig,
): Promise<KernelCounts> {
  const at = async (seq: number): Promise<Record<Task, number>> => {
    const tiny: BenchConfig = { ...cfg, seq, batch: 2, input: 3, hidden: 4 };
    const x = tf.randomNormal([tiny.batch, seq, tiny.input], 0, 1, 'float32', 1) as tf.Tensor3D;
    const y = tf.randomNormal([tiny.batch, seq, tiny.hidden], 0, 1, 'float32', 2) as tf.Tensor3D;
    const c = make(tiny, x, y);
    try {
      return (await profileContender(c)).kernels;
    } finally {
      c.dispose();
      tf.dispose([x, y]);
    }
  };
  const one = await at(cfg.seq);
  const two = await at(2 * cfg.seq);
  const steps = cfg.seq * cfg.layers;
  const per = (t: Task) => (two[t] - one[t]) / steps;
  return {
    perStep: { infer: per('infer'), train: per('train') },
    allIn: { infer: one.infer / steps, train: one.train / steps },
  };
}

/**
 * ReluLstm's generic-ops loop (what tfjs-node(-gpu) and webgl run), counted on the cpu backend, whose
 * _FusedMatMul is one kernel as on webgl. Restores the previous backend afterwards.
 */
async function genericKernelCounts(cfg: BenchConfig, restore: BackendPreference): Promise<KernelCounts> {
  await initBackend('cpu');
  setLstmKernelPath('generic');
  try {
    return await countKernels(ours, cfg);
  } finally {
    setLstmKernelPath('auto');
    await initBackend(restore);
  }
}

interface TorchInfo {
  torch: string;
  threads: number;
  blas: string;
  models: string[];
}

/**
 * bench/pytorch_reference.py --serve as a child process: it warms up, then times one task per request,
 * so its repetitions interleave with the tfjs ones (one process computes at a time).
 */
class TorchServer {
  private readonly pending: Array<(line: string) => void> = [];
  /** Why the child is gone, once it has exited. */
  private exited: string | null = null;

  private constructor(
    private readonly child: ChildProcessByStdio<Writable, Readable, null>,
    readonly info: TorchInfo,
  ) {}

  /** null (with the reason printed) when no python with torch is found. */
  static async start(configName: string, warmup: number): Promise<TorchServer | null> {
    const { python, tried } = findTorchPython();
    if (python === null) {
      console.log(`PyTorch reference: skipped (${tried.join('; ')})`);
      return null;
    }
    const child = spawn(python, [PYTORCH_SCRIPT, '--config', configName, '--warmup', String(warmup), '--serve'], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const lines = createInterface({ input: child.stdout });
    const first = await new Promise<string>((resolve, reject) => {
      lines.once('line', resolve);
      child.once('exit', (code) => reject(new Error(`${PYTORCH_SCRIPT} exited with code ${code} before it was ready`)));
    });
    const server = new TorchServer(child, JSON.parse(first) as TorchInfo);
    lines.on('line', (line) => server.pending.shift()?.(line));
    // A crash after the ready line (say, out of memory at config L) fails the requests waiting on it
    // and every later one, rather than leaving the benchmark waiting forever.
    child.once('exit', (code, signal) => {
      server.exited = `exited (code ${code}, signal ${signal})`;
      for (const answer of server.pending.splice(0)) answer(JSON.stringify({ error: server.exited }));
    });
    return server;
  }

  time(task: Task, model: string): Promise<number> {
    if (this.exited) return Promise.reject(new Error(`${PYTORCH_SCRIPT}: ${this.exited}`));
    return new Promise((resolve, reject) => {
      this.pending.push((line) => {
        const reply = JSON.parse(line) as { ms?: number; error?: string };
        if (typeof reply.ms === 'number') resolve(reply.ms);
        else reject(new Error(`${PYTORCH_SCRIPT}: ${reply.error ?? line}`));
      });
      this.child.stdin.write(`${task} ${model}\n`);
    });
  }

  contender(model: string, name: string): Contender {
    return {
      name,
      infer: () => this.time('infer', model),
      train: () => this.time('train', model),
      dispose: () => undefined,
    };
  }

  close(): void {
    this.child.stdin.end();
  }
}

const PYTORCH_SCRIPT = path.join(__dirname, '..', 'pytorch_reference.py');

/**
 * The Python that has torch: RELU_LSTM_BENCH_PYTHON if set, else the first of python3 on PATH and
 * /usr/bin/python3 (Debian's python3-torch installs there, which a pyenv python3 on PATH hides).
 */
function findTorchPython(): { python: string | null; tried: string[] } {
  const override = process.env.RELU_LSTM_BENCH_PYTHON?.trim();
  const candidates = override ? [override] : ['python3', '/usr/bin/python3'];
  const tried: string[] = [];
  for (const python of candidates) {
    try {
      execFileSync(python, ['-c', 'import torch'], { stdio: 'pipe' });
      return { python, tried };
    } catch (err) {
      const why = String((err as { stderr?: Buffer }).stderr || (err as Error).message)
        .trim()
        .split('\n')
        .pop();
      tried.push(`${python} -c 'import torch': ${why}`);
    }
  }
  return { python: null, tried };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Columns before `leftColumns` are left-aligned (labels), the rest right-aligned (numbers). */
function table(rows: string[][], leftColumns = 1): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const cell = (text: string, c: number) => (c < leftColumns ? text.padEnd(widths[c]) : text.padStart(widths[c]));
  return rows.map((r) => r.map(cell).join('   ').trimEnd()).join('\n');
}

const range = (xs: number[]) => `${Math.min(...xs).toFixed(0)}-${Math.max(...xs).toFixed(0)}`;
const ratio = (num: number, den: number) => `${(num / den).toFixed(2)}x`;
const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MB`;

async function benchOne(configName: string, cfg: BenchConfig, info: BackendInfo, args: Args): Promise<void> {
  console.log(
    `\n=== ${info.backend}, config ${configName}: batch ${cfg.batch}, seq ${cfg.seq}, input ${cfg.input}, hidden ${cfg.hidden}, ` +
      `layers ${cfg.layers} ===\n` +
      `device: ${info.device}${info.gpu ? ' (GPU)' : ''}` +
      (info.skipped?.length ? `; auto skipped: ${info.skipped.join('; ')}` : '') +
      `\nReluLstm loop: ${lstmKernelPath()}; ${args.warmup} warmup (the first profiled) + ${args.reps} timed reps, interleaved; ` +
      'times are medians in ms',
  );
  const x = tf.randomNormal([cfg.batch, cfg.seq, cfg.input], 0, 1, 'float32', 1) as tf.Tensor3D;
  const y = tf.randomNormal([cfg.batch, cfg.seq, cfg.hidden], 0, 1, 'float32', 2) as tf.Tensor3D;
  const tfContenders = [ours(cfg, x, y), theirs(cfg, x, y)];
  const torch = args.pytorch ? await TorchServer.start(configName, args.warmup) : null;
  const contenders = [
    ...tfContenders,
    ...(torch
      ? [
          torch.contender('nn.LSTM', 'PyTorch nn.LSTM (tanh)'),
          torch.contender('ReLU cell loop', 'PyTorch ReLU cell loop'),
        ]
      : []),
  ];
  const times = new Map<string, number[]>();
  const leaked = new Map<string, number>(contenders.map((c) => [c.name, 0]));
  for (const c of contenders) for (const t of TASKS) times.set(`${c.name}/${t}`, []);

  const profiled = new Map<string, Profiled>();
  for (const c of tfContenders) profiled.set(c.name, await profileContender(c));
  for (let r = 1; r < args.warmup; r++) {
    for (const t of TASKS) for (const c of tfContenders) await c[t]();
  }
  const tensorsBefore = tf.memory().numTensors;
  for (let r = 0; r < args.reps; r++) {
    const order = r % 2 === 0 ? contenders : [...contenders].reverse();
    for (const t of TASKS) {
      for (const c of order) {
        const n0 = tf.memory().numTensors;
        const t0 = performance.now();
        const selfTimed = await c[t]();
        times.get(`${c.name}/${t}`)!.push(typeof selfTimed === 'number' ? selfTimed : performance.now() - t0);
        leaked.set(c.name, leaked.get(c.name)! + tf.memory().numTensors - n0);
      }
    }
    process.stderr.write(`  rep ${r + 1}/${args.reps} done\n`);
  }
  const tensorsAfter = tf.memory().numTensors;
  const rssAfterTf = process.memoryUsage().rss;
  for (const c of contenders) c.dispose();
  torch?.close();
  tf.dispose([x, y]);

  const counts = {
    ours: await countKernels(ours, cfg),
    generic: lstmKernelPath() === 'generic' ? null : await genericKernelCounts(cfg, info.backend),
    theirs: await countKernels(theirs, cfg),
  };

  const [a, b] = tfContenders;
  const rows = [['task', 'implementation', 'median ms', `time / ${a.name}`, 'min-max ms']];
  for (const t of TASKS) {
    const base = median(times.get(`${a.name}/${t}`)!);
    contenders.forEach((c, k) => {
      const ts = times.get(`${c.name}/${t}`)!;
      rows.push([k === 0 ? TASK_LABEL[t] : '', c.name, median(ts).toFixed(1), ratio(median(ts), base), range(ts)]);
    });
  }
  console.log('');
  console.log(table(rows, 2));
  console.log(
    `(time / ${a.name} above 1x: ${a.name} is that many times faster)` +
      (torch
        ? `\nPyTorch ${torch.info.torch}, ${torch.info.threads} thread, ${torch.info.blas}; timed inside Python, ` +
          'interleaved with the tfjs reps in the same order'
        : ''),
  );

  const f1 = (n: number) => n.toFixed(1);
  const kRows = [
    ['kernels per time step and layer (tf.profile)', 'forward', 'train step', 'forward all-in', 'train all-in'],
  ];
  const kRow = (label: string, k: KernelCounts) => [
    label,
    f1(k.perStep.infer),
    f1(k.perStep.train),
    f1(k.allIn.infer),
    f1(k.allIn.train),
  ];
  kRows.push(kRow(`${a.name}, ${info.backend}, ${lstmKernelPath()} loop`, counts.ours));
  if (counts.generic) kRows.push(kRow(`${a.name}, generic loop (as on tfjs-node, webgl)`, counts.generic));
  kRows.push(kRow(`${b.name}, ${info.backend}`, counts.theirs));
  console.log('');
  console.log(table(kRows));
  console.log(
    `(per step: kernels added by one more step, from runs at seq ${cfg.seq} and ${2 * cfg.seq}; all-in: every kernel of one call, ` +
      `loss and SGD update included, / (seq x layers); counted at batch 2, input 3, hidden 4, as counts depend only on seq and layers` +
      (counts.generic ? '; generic loop counted on cpu' : '') +
      ')',
  );
  const pa = profiled.get(a.name)!;
  const pb = profiled.get(b.name)!;
  console.log('');
  console.log(
    `tensor memory of one training step (tf.profile peak above the start): ${a.name} ${mb(pa.trainPeakBytes)}, ${b.name} ${mb(pb.trainPeakBytes)}`,
  );
  console.log(
    `tensors: ${tensorsBefore} before the timed reps, ${tensorsAfter} after ` +
      `(change during reps: ${a.name} ${signed(leaked.get(a.name)!)}, ${b.name} ${signed(leaked.get(b.name)!)})`,
  );
  console.log(
    `process RSS: ${mb(rssAfterTf)} after the reps, peak ${mb(process.resourceUsage().maxRSS * 1024)} ` +
      '(whole process so far, wasm heap included; the wasm heap never shrinks)',
  );
}

async function main(): Promise<void> {
  const args = parseCli(process.argv.slice(2));
  const cpus = os.cpus();
  console.log(
    `machine: ${cpus[0]?.model.trim() ?? os.arch()}, ${cpus.length} cores, load average ${os.loadavg()[0].toFixed(1)}, ` +
      `${os.platform()} ${os.release()}, node ${process.version}, tfjs ${tf.version.tfjs}`,
  );
  for (const run of args.runs) {
    const info = await initBackend(run.backend);
    const configName = run.config ?? (info.backend === 'cpu' ? 'S' : 'M');
    await benchOne(configName, CONFIGS[configName], info, args);
  }
  console.log(
    `\nload average at the end: ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}`,
  );
}

function signed(n: number): string {
  return n > 0 ? `+${n}` : String(n);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? `${err.name}: ${err.message}` : err);
  if (err instanceof Error && /^--|parseArgs|Unknown option/i.test(err.message)) console.error(USAGE);
  process.exitCode = 1;
});
