/**
 * Choice and initialisation of the TensorFlow.js backend the library computes on.
 *
 * Backends, in the order `'auto'` tries them:
 *   1. 'tensorflow' from `@tensorflow/tfjs-node-gpu` when libtensorflow uses a CUDA device,
 *   2. 'webgpu' from `@tensorflow/tfjs-backend-webgpu` over Dawn (npm `webgpu`), on a hardware adapter
 *      only ('auto' passes over a software or fallback adapter such as lavapipe; naming it takes any),
 *   3. 'tensorflow' on the CPU (`@tensorflow/tfjs-node`, or tfjs-node-gpu without a CUDA device),
 *   4. 'wasm' from `@tensorflow/tfjs-backend-wasm` (XNNPACK kernels; single-threaded under Node),
 *   5. 'cpu' from `@tensorflow/tfjs-backend-cpu` (plain JavaScript kernels).
 *
 * Precedence of the choice: the argument of `initBackend` > the env var `RELU_LSTM_BACKEND` > 'auto'.
 * A backend that is asked for by name (argument or env var) and is not available is an error
 * (`BackendError`), never a silent fallback; only 'auto' falls back.
 *
 * The tfjs-node packages are optional peers, loaded with a run-time `require` so this file compiles
 * and runs without them. They register 'tensorflow' on whatever `@tensorflow/tfjs-core` they resolve,
 * so they are used only when they are version 4.22.0 exactly (this library's tfjs-core version) and
 * resolve to the very same tfjs-core file as this library (one copy after npm's dedupe).
 */
import { execFileSync } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
// The JavaScript backend is synchronous, so registering it (priority 1) changes nothing for code that
// never calls initBackend. The wasm backend is required lazily: registered at import time it would
// take priority 2, and every tensor op before `await tf.ready()` would throw.
import '@tensorflow/tfjs-backend-cpu';
import { BackendError, LstmConfigError } from './errors';
import { WebgpuProbe, probeWebgpu, registerWebgpu, watchWebgpuErrors } from './webgpu';

export const BACKEND_NAMES = ['tensorflow', 'webgpu', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];
export type BackendPreference = BackendName | 'auto';

/** Name of the environment variable read when `initBackend` gets no argument. */
export const BACKEND_ENV_VAR = 'RELU_LSTM_BACKEND';

export interface BackendInfo {
  /** tfjs backend name, as `tf.getBackend()` reports it. */
  readonly backend: BackendName;
  /** True only on a GPU: libtensorflow running on a CUDA device, or webgpu on a hardware adapter. */
  readonly gpu: boolean;
  /**
   * Human-readable device, e.g. `cuda:0 (NVIDIA A100-SXM4-40GB)`, `wasm (1 thread, SIMD) on <CPU model>`,
   * `Vulkan: nvidia ... (NVIDIA H100 80GB HBM3), hardware adapter`.
   */
  readonly device: string;
  /** With 'auto' only: why each earlier candidate of the order was not used, e.g. `@tensorflow/tfjs-node: not installed`. */
  readonly skipped?: readonly string[];
}

/** npm packages that provide the 'tensorflow' backend, in the order they are tried. */
const TFJS_NODE_PACKAGES = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'] as const;

const INSTALL_HINT =
  `install one of them at the version of @tensorflow/tfjs-core (${tf.version_core}): ` +
  `\`npm install @tensorflow/tfjs-node@${tf.version_core}\` (libtensorflow on the CPU) or ` +
  `\`npm install @tensorflow/tfjs-node-gpu@${tf.version_core}\` (Linux x86_64 with CUDA 11.2 + cuDNN 8.1); ` +
  'their install script downloads libtensorflow, so it needs access to storage.googleapis.com ' +
  '(or TFJS_NODE_CDN_STORAGE / TFJS_NODE_BASE_URI pointing at a mirror)';

/** Validates a backend name from the argument (`field` 'preference') or the env var. */
function parsePreference(field: string, value: unknown): BackendPreference {
  if (value === 'auto' || (BACKEND_NAMES as readonly unknown[]).includes(value)) return value as BackendPreference;
  throw new LstmConfigError(field, `one of ${[...BACKEND_NAMES, 'auto'].join(', ')}`, value);
}

/**
 * The backend `initBackend(preference)` will go for: the argument if given, else `RELU_LSTM_BACKEND`
 * (trimmed, case-insensitive; empty means unset), else 'auto'. Throws `LstmConfigError` naming the
 * field (`preference` or `RELU_LSTM_BACKEND`) and the bad value. Exported so a process can validate
 * its environment at start-up.
 */
export function resolveBackendPreference(
  preference?: unknown,
  env: NodeJS.ProcessEnv = process.env,
): BackendPreference {
  if (preference !== undefined) return parsePreference('preference', preference);
  const raw = env[BACKEND_ENV_VAR];
  if (raw === undefined || raw.trim() === '') return 'auto';
  return parsePreference(BACKEND_ENV_VAR, raw.trim().toLowerCase());
}

// Calls are serialised: tfjs's engine has one active backend, and two overlapping setBackend calls
// would race. `autoChoice` keeps the result of the first successful 'auto' so later calls are cheap.
let queue: Promise<unknown> = Promise.resolve();
let autoChoice: BackendInfo | null = null;
const described = new Map<BackendName, BackendInfo>();

/**
 * Selects and initialises the backend, then returns what it runs on. Idempotent: calling it again with
 * the same preference returns the same info without reinitialising; concurrent calls run one after
 * the other. A later call with another preference switches the active backend (tensors made on the
 * previous one move over lazily when used).
 *
 * Throws `LstmConfigError` for an unknown name and `BackendError` when a backend asked for by name
 * is not available (which packages are missing and how to install them); on error the previously
 * active backend stays active.
 */
export async function initBackend(preference?: BackendPreference): Promise<BackendInfo> {
  const wanted = resolveBackendPreference(preference);
  const run = queue.then(() => (wanted === 'auto' ? selectAuto() : activate(wanted)));
  queue = run.catch(() => undefined);
  return run;
}

/** What the active backend runs on, without initialising anything; null before any backend is active. */
export function backendInfo(): BackendInfo | null {
  const engine = tf.engine();
  const name = engine.backendName;
  if (!isBackendName(name) || engine.registry[name] == null) return null;
  if (autoChoice?.backend === name) return autoChoice;
  return describeBackend(name);
}

function isBackendName(name: unknown): name is BackendName {
  return (BACKEND_NAMES as readonly unknown[]).includes(name);
}

async function selectAuto(): Promise<BackendInfo> {
  if (autoChoice !== null) {
    await setActive(autoChoice.backend);
    return autoChoice;
  }
  autoChoice = await chooseAuto();
  return autoChoice;
}

/** Goes down the order of the file comment; `skipped` collects why each earlier candidate was not taken. */
async function chooseAuto(): Promise<BackendInfo> {
  const skipped: string[] = [];
  const tensorflowProblems = registerTensorflow();
  let tensorflowCpu: BackendInfo | null = null;
  if (tensorflowProblems === null) {
    const info = await activate('tensorflow');
    if (info.gpu) return { ...info, skipped };
    tensorflowCpu = info;
  } else {
    skipped.push(...tensorflowProblems);
  }
  const webgpu = await probeWebgpu();
  if (webgpu.adapter?.hardware === true) {
    try {
      const info = await activate('webgpu');
      if (tensorflowCpu !== null) skipped.push(`tensorflow: no CUDA device (${tensorflowCpu.device})`);
      return { ...info, skipped };
    } catch (err) {
      skipped.push(`webgpu: ${(err as Error).message}`);
    }
  } else {
    skipped.push(`webgpu: ${webgpuPassedOver(webgpu)}`);
  }
  if (tensorflowCpu !== null) {
    await setActive('tensorflow');
    return { ...tensorflowCpu, skipped };
  }
  try {
    return { ...(await activate('wasm')), skipped };
  } catch (err) {
    skipped.push(`wasm: ${(err as Error).message}`);
  }
  return { ...(await activate('cpu')), skipped };
}

function webgpuPassedOver(probe: WebgpuProbe): string {
  if (probe.adapter === null) return probe.problem;
  return (
    `only a software adapter (${probe.adapter.description}); 'auto' takes hardware only, ` +
    `${BACKEND_ENV_VAR}=webgpu uses it anyway`
  );
}

async function activate(name: BackendName): Promise<BackendInfo> {
  if (name === 'tensorflow') {
    const problems = registerTensorflow();
    if (problems !== null) {
      throw new BackendError(
        `backend 'tensorflow' is not available: ${problems.join('; ')}. ` +
          `It comes from @tensorflow/tfjs-node-gpu or @tensorflow/tfjs-node; ${INSTALL_HINT}.`,
      );
    }
  } else if (name === 'wasm') {
    registerWasm();
  } else if (name === 'webgpu') {
    await activateWebgpu();
    return describeBackend(name);
  }
  await setActive(name);
  return describeBackend(name);
}

/** Finds Dawn's adapter (any, software included), registers the tfjs backend on it and activates it. */
async function activateWebgpu(): Promise<void> {
  const probe = await probeWebgpu();
  if (probe.adapter === null) throw new BackendError(`backend 'webgpu' is not available: ${probe.problem}`);
  registerWebgpu();
  await setActive('webgpu');
  watchWebgpuErrors();
  described.set(
    'webgpu',
    Object.freeze({ backend: 'webgpu', gpu: probe.adapter.hardware, device: probe.adapter.description }),
  );
}

const SETUP_HINTS: Record<BackendName, string> = {
  tensorflow: '',
  webgpu: '; Dawn found an adapter but could not open a device on it (see docs/backends.md, WebGPU)',
  wasm: '; the .wasm binaries must sit next to @tensorflow/tfjs-backend-wasm/dist/tf-backend-wasm.node.js',
  cpu: '',
};

/** Makes `name` the active backend; on failure restores the previous one and throws `BackendError`. */
async function setActive(name: BackendName): Promise<void> {
  const engine = tf.engine();
  if (engine.backendName === name && engine.registry[name] != null) return;
  const previous = engine.backendName;
  let ok: boolean;
  try {
    ok = await tf.setBackend(name);
  } catch {
    ok = false;
  }
  if (!ok) {
    if (previous != null && engine.registry[previous] != null) await tf.setBackend(previous);
    throw new BackendError(
      `backend '${name}' failed to initialise (tfjs logged the cause as a warning above)` + SETUP_HINTS[name],
    );
  }
  await tf.ready();
}

type WasmModule = typeof import('@tensorflow/tfjs-backend-wasm');
let wasmModule: WasmModule | null = null;

function registerWasm(): WasmModule {
  if (wasmModule === null) {
    try {
      // Registers the 'wasm' factory; the binary is read from the package's own directory at the
      // first setBackend('wasm'), so Node needs no setWasmPaths call.
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- an optional backend, loaded only when chosen
      wasmModule = require('@tensorflow/tfjs-backend-wasm') as WasmModule;
    } catch (err) {
      throw new BackendError(
        `backend 'wasm' is not available: @tensorflow/tfjs-backend-wasm could not be loaded (${(err as Error).message}); ` +
          `it is a dependency of @relu-lstm/lstm, reinstall with \`npm install @tensorflow/tfjs-backend-wasm@${tf.version_core}\``,
      );
    }
  }
  return wasmModule;
}

/**
 * Loads the first usable tfjs-node package unless 'tensorflow' is registered already (by an earlier
 * call or by the application importing tfjs-node itself). Returns null on success, else one reason
 * per package. Loading both packages in one process is never attempted: each brings its own
 * libtensorflow, so once one has registered 'tensorflow' that one is used.
 */
function registerTensorflow(): string[] | null {
  if (tf.engine().registryFactory['tensorflow'] != null) return null;
  const problems: string[] = [];
  for (const pkg of TFJS_NODE_PACKAGES) {
    const problem = checkTfjsNodePackage(pkg);
    if (problem !== null) {
      problems.push(`${pkg}: ${problem}`);
      continue;
    }
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- an optional backend, loaded only when chosen
      require(pkg); // a variable, so TypeScript does not look for the (absent) types
    } catch (err) {
      problems.push(`${pkg}: installed but failed to load (${firstLine(err)})`);
      continue;
    }
    if (tf.engine().registryFactory['tensorflow'] == null) {
      problems.push(
        `${pkg}: loaded but 'tensorflow' is not in this @tensorflow/tfjs-core's backend registry ` +
          `(registered: ${Object.keys(tf.engine().registryFactory).join(', ')}); the two tfjs-core copies differ, run \`npm dedupe\``,
      );
      continue;
    }
    return null; // tfjs-node has also made 'tensorflow' the active backend on import
  }
  return problems;
}

/** Why `pkg` cannot provide the backend (not installed, wrong version, another tfjs-core), or null. */
function checkTfjsNodePackage(pkg: string): string | null {
  let manifest: string;
  try {
    manifest = require.resolve(`${pkg}/package.json`);
  } catch {
    return 'not installed';
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- a JSON manifest read at run time
  const version = (require(manifest) as { version?: string }).version;
  if (version !== tf.version_core) {
    return `version ${version} is installed but exactly ${tf.version_core} (the version of @tensorflow/tfjs-core) is required`;
  }
  let theirs: string;
  try {
    const umbrella = require.resolve('@tensorflow/tfjs/package.json', { paths: [path.dirname(manifest)] });
    theirs = require.resolve('@tensorflow/tfjs-core', { paths: [path.dirname(umbrella)] });
  } catch (err) {
    return `its dependency @tensorflow/tfjs or @tensorflow/tfjs-core cannot be resolved (${firstLine(err)})`;
  }
  const ours = require.resolve('@tensorflow/tfjs-core');
  if (theirs !== ours) {
    return `it would use @tensorflow/tfjs-core at ${theirs}, not this library's ${ours}; run \`npm dedupe\` so there is one copy`;
  }
  return null;
}

function firstLine(err: unknown): string {
  return String((err as Error)?.message ?? err).split('\n')[0];
}

function cpuModel(): string {
  const cpus = os.cpus();
  return cpus.length > 0 ? `${cpus[0].model.trim()} (${cpus.length} cores)` : `unknown ${os.arch()} CPU`;
}

/** Device description of an initialised backend; computed once per backend (it may run nvidia-smi). */
function describeBackend(name: BackendName): BackendInfo {
  const known = described.get(name);
  if (known !== undefined) return known;
  let info: BackendInfo;
  if (name === 'tensorflow') {
    const backend = tf.engine().registry['tensorflow'] as unknown as {
      isUsingGpuDevice?: boolean;
      isGPUPackage?: boolean;
    };
    if (backend.isUsingGpuDevice === true) {
      info = { backend: name, gpu: true, device: cudaDevice() };
    } else {
      const why = backend.isGPUPackage === true ? ', @tensorflow/tfjs-node-gpu found no usable CUDA device' : '';
      info = { backend: name, gpu: false, device: `libtensorflow CPU${why} on ${cpuModel()}` };
    }
  } else if (name === 'wasm') {
    let threads = 1;
    try {
      threads = registerWasm().getThreadsCount();
    } catch {
      // not initialised: keep the Node default, 1
    }
    let simd = '';
    try {
      simd = tf.env().getBool('WASM_HAS_SIMD_SUPPORT') ? ', SIMD' : '';
    } catch {
      // flag not evaluated yet: say nothing about SIMD
    }
    info = {
      backend: name,
      gpu: false,
      device: `wasm (${threads} thread${threads === 1 ? '' : 's'}${simd}) on ${cpuModel()}`,
    };
  } else if (name === 'webgpu') {
    // Activated from outside initBackend (a bare tf.setBackend): the adapter was not probed here.
    info = { backend: name, gpu: false, device: 'WebGPU (adapter not described: activate it with initBackend)' };
  } else {
    info = { backend: name, gpu: false, device: `JavaScript kernels (1 thread) on ${cpuModel()}` };
  }
  Object.freeze(info);
  described.set(name, info);
  return info;
}

/**
 * The CUDA device tfjs-node-gpu runs on. Its binding (binding/tfjs_backend.cc) places every op on the
 * last GPU that libtensorflow lists, i.e. the last one of CUDA_VISIBLE_DEVICES. The name comes from
 * nvidia-smi when it is on the PATH (indices in PCI order; CUDA's order matches with
 * CUDA_DEVICE_ORDER=PCI_BUS_ID); without it the device is just `cuda:<index>`.
 */
function cudaDevice(): string {
  let names: string[] = [];
  try {
    const out = execFileSync('nvidia-smi', ['--query-gpu=name', '--format=csv,noheader'], {
      encoding: 'utf8',
      timeout: 5000,
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    names = out
      .split('\n')
      .map((s) => s.trim())
      .filter((s) => s !== '');
  } catch {
    // no nvidia-smi: name unknown
  }
  const visible = process.env.CUDA_VISIBLE_DEVICES?.split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  let count = names.length;
  let name: string | undefined = names[names.length - 1];
  if (visible !== undefined && visible.length > 0) {
    count = visible.length;
    const last = visible[visible.length - 1];
    name = /^\d+$/.test(last) ? names[Number(last)] : undefined;
  }
  const index = Math.max(count - 1, 0);
  return name !== undefined ? `cuda:${index} (${name})` : `cuda:${index}`;
}
