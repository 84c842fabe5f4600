/**
 * ReluLstm vs a stacked tf.layers.lstm of the same size, on the same backend: median milliseconds of
 * inference (forward only, no tape) and of one training step (forward, MSE over all outputs, backward,
 * SGD update). Warmup first, then interleaved repetitions (the order of the two alternates every rep)
 * so drift on a shared machine hits both alike. See bench/README.md.
 *
 *   npm run bench -- [--backend wasm|cpu|tensorflow|auto] [--config S|M|L] [--reps N] [--warmup N]
 */
import * as os from 'node:os';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { ReluLstm, initBackend, resolveBackendPreference, type BackendInfo } from '@relu-lstm/lstm';

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

const USAGE =
  'usage: npm run bench -- [--backend wasm|cpu|tensorflow|auto] [--config S|M|L] [--reps N] [--warmup N]\n' +
  '  --backend  default: RELU_LSTM_BACKEND, else auto\n' +
  '  --config   default: M, or S on the cpu backend (tf.layers takes ~9 s per step at M there)\n' +
  '  --reps     timed repetitions per task and implementation (default 5)\n' +
  '  --warmup   untimed repetitions first (default 1)';

interface Args {
  backend: string | undefined;
  config: string | undefined;
  reps: number;
  warmup: number;
}

function parseCli(argv: string[]): Args {
  const { values } = parseArgs({
    args: argv,
    options: {
      backend: { type: 'string' },
      config: { type: 'string' },
      reps: { type: 'string' },
      warmup: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const count = (name: string, raw: string | undefined, dflt: number, min: number): number => {
    if (raw === undefined) return dflt;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name}: expected an integer >= ${min}, got ${JSON.stringify(raw)}`);
    return n;
  };
  const config = values.config?.toUpperCase();
  if (config !== undefined && !(config in CONFIGS)) {
    throw new Error(`--config: expected one of ${Object.keys(CONFIGS).join(', ')}, got ${JSON.stringify(values.config)}`);
  }
  return {
    backend: values.backend,
    config,
    reps: count('reps', values.reps, 5, 1),
    warmup: count('warmup', values.warmup, 1, 0),
  };
}

/** One implementation under test: its two timed tasks and its teardown. */
interface Contender {
  name: string;
  infer(): Promise<void>;
  train(): Promise<void>;
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

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function pad(s: string, width: number, right = true): string {
  return right ? s.padStart(width) : s.padEnd(width);
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => pad(cell, widths[c], c > 0)).join('   ')).join('\n');
}

async function main(): Promise<void> {
  const args = parseCli(process.argv.slice(2));
  const info: BackendInfo = await initBackend(args.backend === undefined ? undefined : resolveBackendPreference(args.backend));
  const configName = args.config ?? (info.backend === 'cpu' ? 'S' : 'M');
  const cfg = CONFIGS[configName];

  const cpus = os.cpus();
  const header = [
    `machine: ${cpus[0]?.model.trim() ?? os.arch()}, ${cpus.length} cores, node ${process.version}, tfjs ${tf.version.tfjs}`,
    `backend: ${info.backend}, device: ${info.device}${info.gpu ? ' (GPU)' : ''}` +
      (info.skipped?.length ? `; auto skipped: ${info.skipped.join('; ')}` : ''),
    `config ${configName}: batch ${cfg.batch}, seq ${cfg.seq}, input ${cfg.input}, hidden ${cfg.hidden}, layers ${cfg.layers}; ` +
      `${args.warmup} warmup + ${args.reps} timed reps, interleaved; times are medians in ms`,
  ];
  console.log(header.join('\n'));

  const x = tf.randomNormal([cfg.batch, cfg.seq, cfg.input], 0, 1, 'float32', 1) as tf.Tensor3D;
  const y = tf.randomNormal([cfg.batch, cfg.seq, cfg.hidden], 0, 1, 'float32', 2) as tf.Tensor3D;
  const contenders = [ours(cfg, x, y), theirs(cfg, x, y)];
  const tasks = ['infer', 'train'] as const;
  const times = new Map<string, number[]>();
  const leaked = new Map<string, number>(contenders.map((c) => [c.name, 0]));
  for (const c of contenders) for (const t of tasks) times.set(`${c.name}/${t}`, []);

  for (let r = 0; r < args.warmup; r++) {
    for (const t of tasks) for (const c of contenders) await c[t]();
  }
  const tensorsBefore = tf.memory().numTensors;
  for (let r = 0; r < args.reps; r++) {
    const order = r % 2 === 0 ? contenders : [...contenders].reverse();
    for (const t of tasks) {
      for (const c of order) {
        const n0 = tf.memory().numTensors;
        const t0 = performance.now();
        await c[t]();
        times.get(`${c.name}/${t}`)!.push(performance.now() - t0);
        leaked.set(c.name, leaked.get(c.name)! + tf.memory().numTensors - n0);
      }
    }
    process.stderr.write(`  rep ${r + 1}/${args.reps} done\n`);
  }
  const tensorsAfter = tf.memory().numTensors;

  const [a, b] = contenders;
  const label = { infer: 'inference (forward, no tape)', train: 'train step (fwd+MSE+bwd+SGD)' };
  const rows = [['task', `${a.name} ms`, `${b.name} ms`, `ratio ${b.name}/${a.name}`, `${a.name} min-max`, `${b.name} min-max`]];
  for (const t of tasks) {
    const ta = times.get(`${a.name}/${t}`)!;
    const tb = times.get(`${b.name}/${t}`)!;
    const range = (xs: number[]) => `${Math.min(...xs).toFixed(0)}-${Math.max(...xs).toFixed(0)}`;
    rows.push([label[t], median(ta).toFixed(1), median(tb).toFixed(1), `${(median(tb) / median(ta)).toFixed(2)}x`, range(ta), range(tb)]);
  }
  console.log('');
  console.log(table(rows));
  console.log('');
  console.log(
    `tensors: ${tensorsBefore} before the timed reps, ${tensorsAfter} after ` +
      `(change during reps: ${a.name} ${signed(leaked.get(a.name)!)}, ${b.name} ${signed(leaked.get(b.name)!)})`,
  );
  console.log(`peak RSS: ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB`);

  for (const c of contenders) c.dispose();
  tf.dispose([x, y]);
}

function signed(n: number): string {
  return n > 0 ? `+${n}` : String(n);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? `${err.name}: ${err.message}` : err);
  if (err instanceof Error && /^--|parseArgs|Unknown option/i.test(err.message)) console.error(USAGE);
  process.exitCode = 1;
});
