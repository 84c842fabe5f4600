import * as tf from '@tensorflow/tfjs-core';
import { BACKEND_ENV_VAR, backendInfo, initBackend, resolveBackendPreference, type BackendName } from '../src/backend';
import { BackendError, LstmConfigError } from '../src/errors';
import { describeAdapter, probeWebgpu } from '../src/webgpu';
import { useWebgpuBackend } from './helpers/webgpu';

/** True when `pkg` is installed where this library would look for it. */
function resolves(pkg: string): boolean {
  try {
    require.resolve(`${pkg}/package.json`);
    return true;
  } catch {
    return false;
  }
}

const hasTfjsNode = resolves('@tensorflow/tfjs-node-gpu') || resolves('@tensorflow/tfjs-node');

/** A small computation whose result is checked, so the backend really ran it. */
function checkArithmetic(): void {
  const out = tf.tidy(() =>
    tf.matMul(
      tf.tensor2d([
        [1, 2],
        [3, 4],
      ]),
      tf.tensor2d([[5], [6]]),
    ),
  );
  expect(Array.from(out.dataSync())).toEqual([17, 39]);
  out.dispose();
}

describe('initBackend', () => {
  const savedEnv = process.env[BACKEND_ENV_VAR];
  beforeEach(() => {
    delete process.env[BACKEND_ENV_VAR];
  });
  afterAll(() => {
    if (savedEnv === undefined) delete process.env[BACKEND_ENV_VAR];
    else process.env[BACKEND_ENV_VAR] = savedEnv;
  });

  it.each<BackendName>(['cpu', 'wasm'])('forcing %s makes it the active backend', async (name) => {
    const info = await initBackend(name);
    expect(info.backend).toBe(name);
    expect(info.gpu).toBe(false);
    expect(tf.getBackend()).toBe(name);
    expect(backendInfo()).toEqual(info);
    checkArithmetic();
  });

  it('wasm initialises without setWasmPaths and reports one thread under Node', async () => {
    const info = await initBackend('wasm');
    expect(info.device).toMatch(/^wasm \(1 thread(, SIMD)?\) on /);
  });

  it('auto picks the first available of tfjs-node-gpu on CUDA, webgpu on hardware, tfjs-node, wasm, cpu', async () => {
    await initBackend('cpu');
    const info = await initBackend('auto');
    const webgpu = await probeWebgpu();
    const hardwareWebgpu = webgpu.adapter?.hardware === true;
    const expected: BackendName = hardwareWebgpu ? 'webgpu' : hasTfjsNode ? 'tensorflow' : 'wasm';
    expect(info.backend).toBe(expected);
    expect(tf.getBackend()).toBe(expected);
    if (!hasTfjsNode) {
      const webgpuSkipped = hardwareWebgpu
        ? []
        : [
            webgpu.adapter === null
              ? `webgpu: ${webgpu.problem}`
              : `webgpu: only a software adapter (${webgpu.adapter.description}); 'auto' takes hardware only, ` +
                `${BACKEND_ENV_VAR}=webgpu uses it anyway`,
          ];
      expect(info.skipped).toEqual([
        '@tensorflow/tfjs-node-gpu: not installed',
        '@tensorflow/tfjs-node: not installed',
        ...webgpuSkipped,
      ]);
    }
    checkArithmetic();
    // A second 'auto' returns the cached choice.
    expect(await initBackend('auto')).toBe(info);
  });

  (hasTfjsNode ? it.skip : it)(
    'forcing tensorflow without tfjs-node throws BackendError naming the packages',
    async () => {
      await initBackend('cpu');
      const err = await initBackend('tensorflow').then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(BackendError);
      expect((err as BackendError).code).toBe('backend_unavailable');
      expect((err as Error).message).toContain('@tensorflow/tfjs-node');
      expect((err as Error).message).toContain('@tensorflow/tfjs-node-gpu');
      expect((err as Error).message).toContain(`npm install @tensorflow/tfjs-node@${tf.version_core}`);
      // The failure leaves the previous backend active.
      expect(tf.getBackend()).toBe('cpu');
    },
  );

  it(`honours ${BACKEND_ENV_VAR} when no preference is passed`, async () => {
    await initBackend('wasm');
    process.env[BACKEND_ENV_VAR] = 'cpu';
    const info = await initBackend();
    expect(info.backend).toBe('cpu');
    expect(tf.getBackend()).toBe('cpu');
  });

  it(`accepts ${BACKEND_ENV_VAR} trimmed and in any case; empty means auto`, () => {
    expect(resolveBackendPreference(undefined, { [BACKEND_ENV_VAR]: ' WASM ' })).toBe('wasm');
    expect(resolveBackendPreference(undefined, { [BACKEND_ENV_VAR]: '' })).toBe('auto');
    expect(resolveBackendPreference(undefined, {})).toBe('auto');
  });

  it(`an explicit preference wins over ${BACKEND_ENV_VAR}`, async () => {
    process.env[BACKEND_ENV_VAR] = 'cpu';
    const info = await initBackend('wasm');
    expect(info.backend).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
  });

  it('an invalid argument throws LstmConfigError naming the value', async () => {
    await expect(initBackend('gpu' as BackendName)).rejects.toThrow(LstmConfigError);
    await expect(initBackend('gpu' as BackendName)).rejects.toThrow(
      'preference: expected one of tensorflow, webgpu, wasm, cpu, auto, got "gpu"',
    );
  });

  it(`an invalid ${BACKEND_ENV_VAR} throws LstmConfigError naming the variable and the value`, async () => {
    process.env[BACKEND_ENV_VAR] = 'cuda';
    await expect(initBackend()).rejects.toThrow(LstmConfigError);
    await expect(initBackend()).rejects.toThrow(
      `${BACKEND_ENV_VAR}: expected one of tensorflow, webgpu, wasm, cpu, auto, got "cuda"`,
    );
  });

  it('is idempotent and safe to call concurrently', async () => {
    await initBackend('wasm');
    const tensors = tf.memory().numTensors;
    const registered = Object.keys(tf.engine().registry).sort();
    const infos = await Promise.all([initBackend('cpu'), initBackend('cpu'), initBackend('wasm'), initBackend('cpu')]);
    expect(infos.map((i) => i.backend)).toEqual(['cpu', 'cpu', 'wasm', 'cpu']);
    expect(infos[0]).toBe(infos[1]);
    expect(tf.getBackend()).toBe('cpu');
    expect(await initBackend('cpu')).toBe(infos[0]);
    expect(tf.memory().numTensors).toBe(tensors);
    expect(Object.keys(tf.engine().registry).sort()).toEqual(registered);
  });

  it('a tensor made on one backend is usable after switching', async () => {
    await initBackend('cpu');
    const x = tf.tensor1d([1, 2, 3]);
    await initBackend('wasm');
    const y = tf.mul(x, 2);
    expect(Array.from(await y.data())).toEqual([2, 4, 6]);
    tf.dispose([x, y]);
  });
});

describe('initBackend on webgpu', () => {
  const suite = useWebgpuBackend('initBackend on webgpu');

  it('names the adapter and its API, and is a GPU only on a hardware adapter', async () => {
    if (suite.info === null) return;
    const probe = await probeWebgpu();
    expect(suite.info.backend).toBe('webgpu');
    expect(tf.getBackend()).toBe('webgpu');
    expect(suite.info.device).toBe(probe.adapter!.description);
    expect(suite.info.device).toMatch(
      /^(Vulkan|Metal|D3D12): .+, (hardware|software|fallback|software fallback) adapter$/,
    );
    expect(suite.info.gpu).toBe(probe.adapter!.hardware);
    expect(suite.info.gpu).toBe(/, hardware adapter$/.test(suite.info.device));
    expect(backendInfo()).toEqual(suite.info);
    const out = tf.tidy(() => tf.matMul(tf.tensor2d([[1, 2]]), tf.tensor2d([[3], [4]])));
    expect(Array.from(await out.data())).toEqual([11]);
    out.dispose();
  });

  it(`${BACKEND_ENV_VAR}=webgpu takes any adapter, software included`, async () => {
    if (suite.info === null) return;
    await initBackend('cpu');
    process.env[BACKEND_ENV_VAR] = 'webgpu';
    try {
      expect(await initBackend()).toEqual(suite.info);
    } finally {
      delete process.env[BACKEND_ENV_VAR];
    }
    expect(tf.getBackend()).toBe('webgpu');
  });
});

describe('describeAdapter: what counts as a hardware webgpu adapter', () => {
  it('a discrete GPU is hardware and named by vendor, device and description', () => {
    const nvidia = describeAdapter('Vulkan', {
      info: { vendor: 'nvidia', architecture: 'hopper', device: '', description: 'NVIDIA H100 80GB HBM3' },
    });
    expect(nvidia).toEqual({ hardware: true, description: 'Vulkan: nvidia (NVIDIA H100 80GB HBM3), hardware adapter' });
  });

  it.each([
    ['architecture software', { info: { vendor: 'mesa', architecture: 'software', device: 'llvmpipe' } }, 'software'],
    [
      'a fallback adapter (info)',
      { info: { vendor: 'google', device: 'swiftshader', isFallbackAdapter: true } },
      'fallback',
    ],
    ['a fallback adapter (adapter)', { info: { vendor: 'google' }, isFallbackAdapter: true }, 'fallback'],
  ])('%s is not hardware', (_what, adapter, kind) => {
    const d = describeAdapter('Vulkan', adapter);
    expect(d.hardware).toBe(false);
    expect(d.description).toMatch(new RegExp(`\\b${kind} adapter$`));
  });
});
