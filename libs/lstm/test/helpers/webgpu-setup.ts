import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';

/**
 * The webgpu backend under Node for tests: Dawn's binding (`webgpu` package) as `navigator.gpu`, then
 * tfjs-backend-webgpu. Resolves true when the backend is active; false (with one `SKIPPED:` line) when
 * no WebGPU adapter is usable here, which under CI=true is an error instead: CI must run these tests.
 */
export async function useWebGpu(what: string): Promise<boolean> {
  const missing = await setUpWebGpu();
  if (missing === null) return true;
  if (process.env.CI === 'true') throw new Error(`webgpu tests must run under CI=true, but: ${missing}`);
  console.log(`SKIPPED: ${what}: ${missing}`);
  return false;
}

/** null when tf.getBackend() is 'webgpu' afterwards, else what is missing. */
async function setUpWebGpu(): Promise<string | null> {
  process.env.XDG_RUNTIME_DIR ??= '/tmp'; // lavapipe warns without one
  try {
    // The binding itself: the package's index.js is an ES module, which jest's require cannot load.
    const dir = path.dirname(require.resolve('webgpu/package.json'));
    const addon = path.join(dir, 'dist', `${process.platform}-${process.arch}`, 'dawn.node');
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { create, globals } = require(addon) as { create: (flags: string[]) => unknown; globals: object };
    Object.assign(globalThis, globals);
    Object.defineProperty(globalThis, 'navigator', { value: { gpu: create([]) }, configurable: true });
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    require('@tensorflow/tfjs-backend-webgpu');
  } catch (err) {
    return `the webgpu / tfjs-backend-webgpu packages do not load (${(err as Error).message})`;
  }
  const gpu = (globalThis as unknown as { navigator: { gpu: { requestAdapter(): Promise<unknown> } } }).navigator.gpu;
  const adapter = await gpu.requestAdapter();
  if (!adapter) return 'no WebGPU adapter (install a Vulkan driver Dawn accepts, e.g. Mesa >= 24 lavapipe)';
  if (!(await tf.setBackend('webgpu'))) return 'tfjs could not initialise its webgpu backend';
  return null;
}

/** max |a - ref| / max |ref| (as helpers/fixtures.ts relErr) with an asynchronous read: webgpu under Node has no dataSync. */
export async function relErrAsync(actual: tf.Tensor, ref: unknown): Promise<number> {
  const a = await actual.data();
  const r = (ref as number[]).flat(Infinity as 1) as number[];
  if (a.length !== r.length) throw new Error(`size mismatch: ${a.length} vs ${r.length}`);
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < r.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(a[i] - r[i]));
    maxRef = Math.max(maxRef, Math.abs(r[i]));
  }
  return maxRef === 0 ? maxDiff : maxDiff / maxRef;
}
