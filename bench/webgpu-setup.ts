/**
 * The webgpu backend for the benchmark: through `initBackend('webgpu')` where the library has it, else
 * set up here (Dawn's Node binding, npm `webgpu`, as `navigator.gpu`, then tfjs-backend-webgpu).
 */
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { BACKEND_NAMES, initBackend, type BackendInfo } from '@relu-lstm/lstm';

export const WEBGPU = 'webgpu';

export async function initWebgpu(): Promise<BackendInfo> {
  if ((BACKEND_NAMES as readonly string[]).includes(WEBGPU)) return initBackend(WEBGPU as never);
  process.env.XDG_RUNTIME_DIR ??= '/tmp'; // lavapipe warns without one
  const dir = path.dirname(require.resolve('webgpu/package.json'));
  const addon = path.join(dir, 'dist', `${process.platform}-${process.arch}`, 'dawn.node');
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- the native binding, loaded only for webgpu
  const dawn = require(addon) as { create: (flags: string[]) => GpuLike; globals: object };
  Object.assign(globalThis, dawn.globals);
  const gpu = dawn.create([]);
  Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true });
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- registers 'webgpu' on tfjs-core
  require('@tensorflow/tfjs-backend-webgpu');
  const adapter = await gpu.requestAdapter();
  if (!adapter) throw new Error('webgpu: no WebGPU adapter (is a Vulkan driver Dawn accepts installed?)');
  if (!(await tf.setBackend(WEBGPU))) throw new Error('webgpu: tfjs could not initialise its webgpu backend');
  const { vendor, architecture, device, description } = adapter.info;
  const software = architecture === 'software' || adapter.isFallbackAdapter === true;
  const name = [vendor, architecture, device, description].filter((s) => s).join(' ');
  return { backend: WEBGPU as BackendInfo['backend'], gpu: !software, device: `${name} (Dawn, webgpu)` };
}

interface GpuLike {
  requestAdapter(): Promise<{
    info: { vendor: string; architecture: string; device: string; description: string };
    isFallbackAdapter?: boolean;
  } | null>;
}
