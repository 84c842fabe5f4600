import * as tf from '@tensorflow/tfjs-core';

import { initBackend } from '../../src/backend';
import { webgpuMissing } from './webgpu';

/**
 * The webgpu backend for tests that switch it on themselves. Resolves true when the backend is
 * active; false (with one `SKIPPED:` line) when no WebGPU adapter is usable here, which under CI=true
 * is an error instead: CI must run these tests.
 */
export async function useWebGpu(what: string): Promise<boolean> {
  const missing = await webgpuMissing();
  if (missing === null) {
    await initBackend('webgpu');
    return true;
  }
  if (process.env.CI === 'true') throw new Error(`webgpu tests must run under CI=true, but: ${missing}`);
  console.log(`SKIPPED: ${what}: ${missing}`);
  return false;
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
