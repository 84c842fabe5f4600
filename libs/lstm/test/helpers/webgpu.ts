import type { BackendInfo } from '../../src/backend';
import { initBackend } from '../../src/backend';
import { probeWebgpu } from '../../src/webgpu';

/** What a webgpu suite learns in its beforeAll: the backend, or why there is none. */
export interface WebgpuSuite {
  /** Set once beforeAll has run: the active webgpu backend, or null when the suite is skipped. */
  info: BackendInfo | null;
}

/**
 * Why this machine cannot run webgpu, or null when it can. Probed once per process (Dawn's adapter
 * request is cached by the library).
 */
export async function webgpuMissing(): Promise<string | null> {
  const probe = await probeWebgpu();
  return probe.adapter === null ? probe.problem : null;
}

let announced = false;

/**
 * Registers a beforeAll that makes webgpu the active backend (any adapter, lavapipe included).
 * Without a usable adapter: under CI=true the suite fails (CI installs one); elsewhere it prints one
 * `SKIPPED:` line naming what is missing (once per test file) and each test returns early (check `suite.info`).
 */
export function useWebgpuBackend(suiteName: string): WebgpuSuite {
  const suite: WebgpuSuite = { info: null };
  beforeAll(async () => {
    const missing = await webgpuMissing();
    if (missing !== null) {
      if (process.env.CI === 'true') throw new Error(`${suiteName}: webgpu is required under CI=true: ${missing}`);
      // One line per test file, however many webgpu suites it has.
      if (!announced) process.stdout.write(`SKIPPED: ${suiteName}: no webgpu adapter: ${missing}\n`);
      announced = true;
      return;
    }
    suite.info = await initBackend('webgpu');
  });
  return suite;
}

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
