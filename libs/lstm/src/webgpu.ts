/**
 * WebGPU under Node: Dawn's Node binding (npm `webgpu`) provides `navigator.gpu`, and
 * `@tensorflow/tfjs-backend-webgpu` registers the 'webgpu' backend on it. Both are loaded lazily
 * with a run-time `require`, so the library works without them.
 *
 * The binding is loaded as its native addon (`dist/<platform>-<arch>/dawn.node`) rather than through
 * the package's ES-module index: that index only adds an unmap-on-`GPUDevice.destroy()` patch, which
 * tfjs never needs (it never destroys its device), and an ES module cannot be `require`d by jest or
 * by Node before 20.19.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { BackendError } from './errors';

/** What Dawn's adapter says about itself (WebGPU's GPUAdapterInfo, as far as it is used here). */
export interface AdapterInfoLike {
  vendor?: string;
  architecture?: string;
  device?: string;
  description?: string;
  isFallbackAdapter?: boolean;
}

export interface AdapterLike {
  info?: AdapterInfoLike;
  isFallbackAdapter?: boolean;
}

interface GpuLike {
  requestAdapter(options?: { powerPreference?: 'low-power' | 'high-performance' }): Promise<AdapterLike | null>;
}

interface DawnBinding {
  create(flags: string[]): GpuLike;
  globals: Record<string, unknown>;
}

/** The adapter tfjs will use, described. */
export interface WebgpuAdapter {
  /** Not a fallback adapter and not architecture `software` (lavapipe, SwiftShader are software). */
  readonly hardware: boolean;
  /** e.g. `Vulkan: mesa llvmpipe (llvmpipe: Mesa 25.0.7 (LLVM 15.0.6)), software adapter`. */
  readonly description: string;
}

/** The result of looking for an adapter: one, or why there is none. */
export type WebgpuProbe = { adapter: WebgpuAdapter; problem?: undefined } | { adapter: null; problem: string };

/** Dawn's native API per platform: the one asked for, so the one named in the description. */
const DAWN_APIS: Partial<Record<NodeJS.Platform, { flag: string; name: string }>> = {
  linux: { flag: 'vulkan', name: 'Vulkan' },
  darwin: { flag: 'metal', name: 'Metal' },
  win32: { flag: 'd3d12', name: 'D3D12' },
};

const PACKAGES_HINT =
  `\`npm install webgpu@0.6.2 @tensorflow/tfjs-backend-webgpu@${tf.version_core}\` ` +
  '(optional dependencies of @relu-lstm/lstm; no download at install)';

const NO_ADAPTER_HINT =
  'Dawn needs a Vulkan driver it accepts: a GPU driver with its Vulkan ICD (NVIDIA: the driver package ' +
  'with nvidia_icd.json), or Mesa >= 24 lavapipe for a software device (Debian 12: ' +
  '`apt-get install -t bookworm-backports mesa-vulkan-drivers libvulkan1`); see docs/backends.md, WebGPU';

let probe: Promise<WebgpuProbe> | null = null;

/**
 * Installs `navigator.gpu` (once) and asks Dawn for the adapter tfjs will request (high-performance).
 * Cached: the first answer holds for the process. Never throws; a missing package or driver is the
 * `problem`.
 */
export function probeWebgpu(): Promise<WebgpuProbe> {
  probe ??= findAdapter();
  return probe;
}

async function findAdapter(): Promise<WebgpuProbe> {
  const api = DAWN_APIS[process.platform];
  if (api === undefined) return { adapter: null, problem: `Dawn has no native API on ${process.platform}` };
  let gpu: GpuLike;
  try {
    gpu = installNavigatorGpu(api.flag);
  } catch (err) {
    return { adapter: null, problem: `the Dawn binding could not be loaded (${firstLine(err)}); ${PACKAGES_HINT}` };
  }
  let adapter: AdapterLike | null;
  try {
    adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  } catch (err) {
    return { adapter: null, problem: `Dawn's requestAdapter failed (${firstLine(err)}); ${NO_ADAPTER_HINT}` };
  }
  if (adapter === null) return { adapter: null, problem: `Dawn found no ${api.name} adapter; ${NO_ADAPTER_HINT}` };
  return { adapter: describeAdapter(api.name, adapter) };
}

/** Names the adapter and decides whether it is hardware (exported for its unit test). */
export function describeAdapter(api: string, adapter: AdapterLike): WebgpuAdapter {
  const info = adapter.info ?? {};
  const fallback = adapter.isFallbackAdapter === true || info.isFallbackAdapter === true;
  const software = info.architecture === 'software';
  const hardware = !fallback && !software;
  const name = [info.vendor, info.device].filter((s) => s !== undefined && s !== '').join(' ') || 'unknown adapter';
  const detail = info.description !== undefined && info.description !== '' ? ` (${info.description.trim()})` : '';
  const kind = hardware ? 'hardware' : [software ? 'software' : '', fallback ? 'fallback' : ''].join(' ').trim();
  return { hardware, description: `${api}: ${name}${detail}, ${kind} adapter` };
}

/** Loads Dawn and makes it `navigator.gpu` (and its GPU* constants globals), as tfjs-backend-webgpu expects. */
function installNavigatorGpu(apiFlag: string): GpuLike {
  // Mesa's lavapipe warns on every start without it.
  if (process.env.XDG_RUNTIME_DIR === undefined) process.env.XDG_RUNTIME_DIR = runtimeDir();
  const pkgDir = path.dirname(require.resolve('webgpu/package.json'));
  const addon = path.join(pkgDir, 'dist', `${process.platform}-${process.arch}`, 'dawn.node');
  if (!fs.existsSync(addon)) throw new Error(`${addon} does not exist (no prebuilt binding for this platform)`);
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- an optional native backend, loaded only when chosen
  const dawn = require(addon) as DawnBinding;
  Object.assign(globalThis, dawn.globals);
  const gpu = dawn.create([`backend=${apiFlag}`]);
  // Node 21+ has a `navigator` of its own: extend it; Node 20 has none: define one.
  const existing = (globalThis as { navigator?: object }).navigator;
  if (existing !== undefined && existing !== null) {
    Object.defineProperty(existing, 'gpu', { value: gpu, configurable: true, enumerable: true });
  } else {
    Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
  }
  return gpu;
}

/** A private runtime directory, as XDG asks (owner-only). */
function runtimeDir(): string {
  const dir = path.join(os.tmpdir(), `xdg-runtime-${os.userInfo().uid}`);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

let registered = false;

/**
 * Loads `@tensorflow/tfjs-backend-webgpu`, which registers 'webgpu' at import when `navigator.gpu`
 * exists (so after `probeWebgpu`). Throws when it cannot be loaded or registers on another tfjs-core.
 */
export function registerWebgpu(): void {
  if (registered || tf.engine().registryFactory['webgpu'] != null) {
    registered = true;
    return;
  }
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- an optional backend, loaded only when chosen
    require('@tensorflow/tfjs-backend-webgpu');
  } catch (err) {
    throw new BackendError(
      `backend 'webgpu' is not available: @tensorflow/tfjs-backend-webgpu could not be loaded (${firstLine(err)}); ${PACKAGES_HINT}`,
    );
  }
  if (tf.engine().registryFactory['webgpu'] == null) {
    throw new BackendError(
      "backend 'webgpu' is not available: @tensorflow/tfjs-backend-webgpu loaded but 'webgpu' is not in this @tensorflow/tfjs-core's registry " +
        '(two tfjs-core copies, or navigator.gpu missing at its import); run `npm dedupe`',
    );
  }
  registered = true;
}

interface DeviceLike {
  addEventListener?(type: 'uncapturederror', listener: (event: { error?: { message?: string } }) => void): void;
}

const watched = new WeakSet<object>();

/**
 * Makes the webgpu device's uncaptured errors visible on stderr. Dawn reports a failed validation
 * only there, and a command buffer with one invalid pass is dropped whole, so without this a GPU
 * error shows up only as results that read as zeros.
 */
export function watchWebgpuErrors(): void {
  const backend = tf.engine().registry['webgpu'] as unknown as { device?: DeviceLike } | undefined;
  const device = backend?.device;
  if (device?.addEventListener === undefined || watched.has(device)) return;
  watched.add(device);
  device.addEventListener('uncapturederror', (event) => {
    process.stderr.write(`webgpu: device error, the batch of GPU work it was in is lost: ${event.error?.message}\n`);
  });
}

function firstLine(err: unknown): string {
  return String((err as Error)?.message ?? err).split('\n')[0];
}
