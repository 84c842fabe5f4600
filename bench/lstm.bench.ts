/**
 * ReluLstm vs a stacked tf.layers.lstm of the same size, on the same backend and in the same process,
 * with PyTorch (one thread) as an outside reference: median milliseconds of inference (forward only,
 * no tape) and of one training step (forward, MSE over all outputs, backward, SGD update), kernels per
 * time step and layer, and the memory of a training step. Warmup first, then interleaved repetitions
 * (the order of the two alternates every rep) so drift on a shared machine hits both alike.
 * See bench/README.md.
 *
 *   npm run bench                       the standard suite: cpu S, wasm M, wasm L
 *   npm run bench -- [--backend webgpu|wasm|cpu|tensorflow|auto] [--config|--sizes S|M|L[,..]] [--reps N] [--warmup N]
 *                    [--loops fused,generic] [--submit-batch N[,..]] [--no-layers] [--no-pytorch]
 *
 * On webgpu it times ReluLstm's fused and generic loops side by side, each with every value of
 * WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE asked for; PyTorch gets CUDA rows when its torch sees a GPU.
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
  type LstmKernelPath,
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
  'usage: npm run bench -- [--backend webgpu|wasm|cpu|tensorflow|auto] [--config|--sizes S|M|L[,S|M|L...]] [--reps N] [--warmup N]\n' +
  '                        [--loops fused,generic] [--submit-batch N[,N...]] [--no-layers] [--no-pytorch]\n' +
  '  no --backend, --config or RELU_LSTM_BACKEND: the suite cpu S, wasm M, wasm L\n' +
  '  --backend      default: RELU_LSTM_BACKEND, else auto\n' +
  '  --config       default: M, or S on the cpu backend (tf.layers takes ~9 s per step at M there); --sizes is the same\n' +
  '  --reps         timed repetitions per task and implementation (default 5)\n' +
  '  --warmup       untimed repetitions first, the first one profiled (default 1, at least 1)\n' +
  "  --loops        ReluLstm's time loops to time side by side (default: fused,generic on webgpu, else the backend's own)\n" +
  '  --submit-batch webgpu only: values of WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE (dispatches per queue submit) to time\n' +
  "                 side by side, each with every loop (default: tfjs's default, 15)\n" +
  '  --no-layers    skip tf.layers.lstm (slow on a software GPU)\n' +
  '  --no-pytorch   skip the PyTorch reference (bench/pytorch_reference.py; CUDA columns when torch sees a GPU)';

interface Args {
  runs: Array<{ backend: BackendPreference; config: string | undefined }>;
  reps: number;
  warmup: number;
  pytorch: boolean;
  layers: boolean;
  /** null: the defaults for the backend (see USAGE). */
  loops: LstmKernelPath[] | null;
  submitBatch: number[] | null;
}

const LOOPS: readonly LstmKernelPath[] = ['fused', 'generic'];

function parseCli(argv: string[]): Args {
  const { values } = parseArgs({
    args: argv,
    options: {
      backend: { type: 'string' },
      config: { type: 'string' },
      sizes: { type: 'string' },
      reps: { type: 'string' },
      warmup: { type: 'string' },
      loops: { type: 'string' },
      'submit-batch': { type: 'string' },
      'no-layers': { type: 'boolean' },
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
  const list = (raw: string | undefined) => raw?.split(',').map((c) => c.trim());
  const configs = list(values.config ?? values.sizes)?.map((c) => c.toUpperCase());
  for (const c of configs ?? []) {
    if (!(c in CONFIGS))
      throw new Error(`--config: expected one of ${Object.keys(CONFIGS).join(', ')}, got ${JSON.stringify(c)}`);
  }
  const loops = list(values.loops);
  for (const l of loops ?? []) {
    if (!(LOOPS as readonly string[]).includes(l))
      throw new Error(`--loops: expected one of ${LOOPS.join(', ')}, got ${JSON.stringify(l)}`);
  }
  const envBackend = (process.env.RELU_LSTM_BACKEND ?? '').trim().toLowerCase();
  const backend = (): BackendPreference => resolveBackendPreference(values.backend);
  const runs =
    values.backend === undefined && configs === undefined && envBackend === ''
      ? SUITE
      : (configs ?? [undefined]).map((config) => ({ backend: backend(), config }));
  return {
    runs,
    reps: count('reps', values.reps, 5, 1),
    warmup: count('warmup', values.warmup, 1, 1),
    pytorch: !values['no-pytorch'],
    layers: !values['no-layers'],
    loops: (loops as LstmKernelPath[] | undefined) ?? null,
    submitBatch: list(values['submit-batch'])?.map((n) => intArg('--submit-batch', n, 1)) ?? null,
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

/**
 * A way of running ReluLstm: its time loop and, on webgpu, how many dispatches tfjs records before it
 * submits them to the GPU queue (WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE). null: the defaults.
 */
interface Variant {
  loop: LstmKernelPath;
  submitBatch: number | null;
}

const SUBMIT_BATCH_FLAG = 'WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE';

function variantName(v: Variant | null): string {
  if (!v) return 'ReluLstm';
  return `ReluLstm ${v.loop}` + (v.submitBatch === null ? '' : `, submit batch ${v.submitBatch}`);
}

/** Runs `fn` with the variant's loop and submit batch, then restores both. */
async function withVariant<T>(v: Variant | null, fn: () => Promise<T>): Promise<T> {
  if (!v) return fn();
  const batchBefore = v.submitBatch === null ? null : tf.env().get(SUBMIT_BATCH_FLAG);
  setLstmKernelPath(v.loop === 'generic' ? 'generic' : 'auto');
  if (v.submitBatch !== null) tf.env().set(SUBMIT_BATCH_FLAG, v.submitBatch);
  try {
    return await fn();
  } finally {
    setLstmKernelPath('auto');
    if (batchBefore !== null) tf.env().set(SUBMIT_BATCH_FLAG, batchBefore);
  }
}

function ours(cfg: BenchConfig, x: tf.Tensor3D, y: tf.Tensor3D, variant: Variant | null = null): Contender {
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
    name: variantName(variant),
    infer: () =>
      withVariant(variant, async () => {
        const out = tf.tidy(() => lstm.forward(x).output);
        await out.data();
        out.dispose();
      }),
    train: () =>
      withVariant(variant, async () => {
        const loss = opt.minimize(() => mse(lstm.forward(x, undefined, { training: true }).output, y), true, vars);
        await loss!.data();
        loss!.dispose();
      }),
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
  /** 'cpu', or 'cuda (<device name>)'. */
  device: string;
}

type TorchDevice = 'cpu' | 'cuda';

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

  /**
   * null (with the reason printed) when no python with torch is found, or for 'cuda' when that torch
   * sees no CUDA device (torch.cuda.is_available()).
   */
  static async start(configName: string, warmup: number, device: TorchDevice): Promise<TorchServer | null> {
    const { python, tried } = findTorchPython();
    if (python === null) {
      console.log(`PyTorch reference${device === 'cuda' ? ' on CUDA' : ''}: skipped (${tried.join('; ')})`);
      return null;
    }
    if (device === 'cuda' && !torchSeesCuda(python)) {
      console.log(`PyTorch reference on CUDA: skipped (${python}: torch.cuda.is_available() is False)`);
      return null;
    }
    const argv = [PYTORCH_SCRIPT, '--config', configName, '--warmup', String(warmup), '--device', device, '--serve'];
    const child = spawn(python, argv, { stdio: ['pipe', 'pipe', 'inherit'] });
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

function torchSeesCuda(python: string): boolean {
  try {
    execFileSync(python, ['-c', 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 3)'], {
      stdio: 'pipe',
    });
    return true;
  } catch {
    return false;
  }
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

/** ReluLstm's variants for this run: loops x submit batches (webgpu), or the backend's own loop alone. */
function variantsFor(info: BackendInfo, args: Args): Array<Variant | null> {
  const webgpu = info.backend === 'webgpu';
  if (!webgpu && args.loops === null) return [null];
  if (!webgpu && args.submitBatch !== null) throw new Error('--submit-batch: only with --backend webgpu');
  const loops = args.loops ?? (webgpu ? LOOPS : [lstmKernelPath()]);
  const batches = args.submitBatch ?? [webgpu ? (tf.env().get(SUBMIT_BATCH_FLAG) as number) : null];
  return loops.flatMap((loop) => batches.map((submitBatch) => ({ loop, submitBatch })));
}

async function startTorch(configName: string, args: Args): Promise<TorchServer[]> {
  if (!args.pytorch) return [];
  const servers: TorchServer[] = [];
  for (const device of ['cpu', 'cuda'] as const) {
    const server = await TorchServer.start(configName, args.warmup, device);
    if (server) servers.push(server);
  }
  return servers;
}

function torchContenders(servers: TorchServer[]): Contender[] {
  return servers.flatMap((s) =>
    s.info.device === 'cpu'
      ? [s.contender('nn.LSTM', 'PyTorch nn.LSTM (tanh)'), s.contender('ReLU cell loop', 'PyTorch ReLU cell loop')]
      : [
          s.contender('nn.LSTM', 'PyTorch CUDA cuDNN nn.LSTM (tanh)'),
          s.contender('ReLU cell loop', 'PyTorch CUDA ReLU cell loop'),
        ],
  );
}

async function benchOne(configName: string, cfg: BenchConfig, info: BackendInfo, args: Args): Promise<void> {
  const variants = variantsFor(info, args);
  console.log(
    `\n=== ${info.backend}, config ${configName}: batch ${cfg.batch}, seq ${cfg.seq}, input ${cfg.input}, hidden ${cfg.hidden}, ` +
      `layers ${cfg.layers} ===\n` +
      `device: ${info.device}${info.gpu ? ' (GPU)' : ''}` +
      (info.skipped?.length ? `; auto skipped: ${info.skipped.join('; ')}` : '') +
      (variants[0]
        ? `\nReluLstm variants: ${variants.map(variantName).join('; ')}; `
        : `\nReluLstm loop: ${lstmKernelPath()}; `) +
      `${args.warmup} warmup (the first profiled) + ${args.reps} timed reps, interleaved; times are medians in ms`,
  );
  const x = tf.randomNormal([cfg.batch, cfg.seq, cfg.input], 0, 1, 'float32', 1) as tf.Tensor3D;
  const y = tf.randomNormal([cfg.batch, cfg.seq, cfg.hidden], 0, 1, 'float32', 2) as tf.Tensor3D;
  const tfContenders = [...variants.map((v) => ours(cfg, x, y, v)), ...(args.layers ? [theirs(cfg, x, y)] : [])];
  const torch = await startTorch(configName, args);
  const contenders = [...tfContenders, ...torchContenders(torch)];
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
  for (const s of torch) s.close();
  tf.dispose([x, y]);

  const a = tfContenders[0];
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
  console.log(`(time / ${a.name} above 1x: ${a.name} is that many times faster)`);
  for (const s of torch) {
    console.log(
      `PyTorch ${s.info.torch} on ${s.info.device}, ${s.info.threads} CPU thread, ${s.info.blas}; timed inside Python ` +
        '(synchronised by the read back), interleaved with the tfjs reps in the same order',
    );
  }
  if (args.pytorch && !torch.some((s) => s.info.device !== 'cpu')) {
    console.log('(no PyTorch CUDA columns: they appear when the Python found has torch.cuda.is_available())');
  }

  await printKernelCounts(cfg, info, variants, args.layers);
  console.log('');
  console.log(
    'tensor memory of one training step (tf.profile peak above the start): ' +
      tfContenders.map((c) => `${c.name} ${mb(profiled.get(c.name)!.trainPeakBytes)}`).join(', '),
  );
  console.log(
    `tensors: ${tensorsBefore} before the timed reps, ${tensorsAfter} after ` +
      `(change during reps: ${tfContenders.map((c) => `${c.name} ${signed(leaked.get(c.name)!)}`).join(', ')})`,
  );
  console.log(
    `process RSS: ${mb(rssAfterTf)} after the reps, peak ${mb(process.resourceUsage().maxRSS * 1024)} ` +
      '(whole process so far, wasm heap included; the wasm heap never shrinks)',
  );
}

/**
 * The kernels table: ReluLstm per loop of the run (counted on the active backend), the generic loop
 * counted on cpu when the run has only a fused loop off webgpu, and tf.layers.
 */
async function printKernelCounts(
  cfg: BenchConfig,
  info: BackendInfo,
  variants: Array<Variant | null>,
  layers: boolean,
): Promise<void> {
  const loops = [...new Set(variants.map((v) => v?.loop ?? null))];
  const rowsOf: Array<[string, KernelCounts]> = [];
  for (const loop of loops) {
    const variant = loop === null ? null : { loop, submitBatch: null };
    const counts = await countKernels((c, x, y) => ours(c, x, y, variant), cfg);
    rowsOf.push([`ReluLstm, ${info.backend}, ${loop ?? lstmKernelPath()} loop`, counts]);
  }
  const onCpu = info.backend !== 'webgpu' && !loops.includes('generic') && lstmKernelPath() !== 'generic';
  if (onCpu) {
    rowsOf.push(['ReluLstm, generic loop (as on tfjs-node, webgl)', await genericKernelCounts(cfg, info.backend)]);
  }
  if (layers) rowsOf.push([`tf.layers, ${info.backend}`, await countKernels(theirs, cfg)]);
  const f1 = (n: number) => n.toFixed(1);
  const kRows = [
    ['kernels per time step and layer (tf.profile)', 'forward', 'train step', 'forward all-in', 'train all-in'],
    ...rowsOf.map(([label, k]) => [
      label,
      f1(k.perStep.infer),
      f1(k.perStep.train),
      f1(k.allIn.infer),
      f1(k.allIn.train),
    ]),
  ];
  console.log('');
  console.log(table(kRows));
  console.log(
    `(per step: kernels added by one more step, from runs at seq ${cfg.seq} and ${2 * cfg.seq}; all-in: every kernel of one call, ` +
      `loss and SGD update included, / (seq x layers); counted at batch 2, input 3, hidden 4, as counts depend only on seq and layers` +
      (onCpu ? '; generic loop counted on cpu' : '') +
      ')',
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
