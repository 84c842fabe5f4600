/**
 * docker-compose.yml, compose.worker-host.yml and the Dockerfiles, checked without a Docker engine:
 * the compose files parse (YAML merge keys on, as Compose reads them) and have the services, Redis
 * and S3 settings, GPU pinning, store and scaling properties the issues ask for; its variables resolve to a coherent
 * set-up; the Dockerfiles install, build and run what the compose file starts; and the worker health
 * check, a script inside the compose file, is run for real against Redis.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { parse } from 'yaml';
import { loadConfig } from '../apps/api/src/config';
import { loadWorkerConfig } from '../apps/worker/src/config';
import { apiVariables, workerVariables } from './config-vars';

const ROOT = join(__dirname, '..');
const read = (p: string) => readFileSync(join(ROOT, p), 'utf8');

interface Service {
  image?: string;
  build?: { context: string; dockerfile: string };
  command?: string[];
  environment?: Record<string, string | null>;
  ports?: string[];
  volumes?: string[];
  container_name?: string;
  profiles?: string[];
  healthcheck?: { test: string[]; start_period?: string };
  depends_on?: Record<string, { condition: string }>;
  deploy?: { replicas?: number | string; resources?: { reservations?: { devices?: Array<Record<string, unknown>> } } };
  entrypoint?: string[];
  init?: boolean;
}
interface Compose {
  services: Record<string, Service>;
  volumes: Record<string, unknown>;
  [k: string]: unknown;
}

const compose = parse(read('docker-compose.yml'), { merge: true }) as Compose;
const workerHost = parse(read('compose.worker-host.yml'), { merge: true }) as Compose;
const { services } = compose;
const gpuWorkers = ['worker-gpu-0', 'worker-gpu-1'];
const workers = ['worker', ...gpuWorkers];
const appServices = ['api', ...workers];
/** Everything the GPU runtime reads besides the worker's configuration. */
const GPU_RUNTIME = ['TF_FORCE_GPU_ALLOW_GROWTH', 'CUDA_CACHE_PATH', 'CUDA_CACHE_MAXSIZE'];

/** Variables `docker compose up` needs, as an operator's `.env` would set them. */
const SETUP = {
  REDIS_PASSWORD: 's3cret-pw',
  API_KEYS: `acme:${'ab'.repeat(32)}`,
  AWS_ACCESS_KEY_ID: 'runner-key',
  AWS_SECRET_ACCESS_KEY: 'runner-secret',
};

/**
 * Compose-style interpolation: `${VAR:-default}` -> the value or default, `${VAR:?message}` -> the
 * value, or an error with the message when unset or empty (Compose stops there), `${VAR}` -> value or ''.
 */
function interpolate(s: string, env: Record<string, string> = SETUP): string {
  return s.replace(/\$\{([A-Z0-9_]+)(?:(:?-|:\?)([^}]*))?\}/g, (_m, name: string, op?: string, arg?: string) => {
    if (op === ':?') {
      if (!env[name]) throw new Error(`required variable ${name} is missing a value: ${arg}`);
      return env[name];
    }
    return env[name] || arg || '';
  });
}

/** A service's environment as the container gets it (pass-through variables unset). */
function envOf(service: Service, e: Record<string, string> = SETUP): Record<string, string> {
  return Object.fromEntries(
    Object.entries(service.environment ?? {})
      .filter(([, v]) => v !== null)
      .map(([k, v]) => [k, interpolate(v!, e)]),
  );
}

/** The variables a compose file takes from the shell or .env that its header does not describe. */
function undescribedVariables(file: string, apps: Service[]): string[] {
  const text = read(file);
  const header = text.slice(0, text.search(/^[^#\n]/m));
  const fromShell = new Set([
    ...[...text.matchAll(/\$\{([A-Z][A-Z0-9_]*)/g)].map((m) => m[1]),
    ...apps.flatMap((s) =>
      Object.entries(s.environment!)
        .filter(([, v]) => v === null)
        .map(([k]) => k),
    ),
  ]);
  expect(fromShell.size).toBeGreaterThan(8);
  return [...fromShell].filter((v) => !new RegExp(`^#.*\\b${v}\\b`, 'm').test(header));
}

/** GPU services are `worker-gpu-<N>`, each reserving exactly NVIDIA device N. */
function expectPinnedGpus(all: Record<string, Service>): void {
  const gpu = Object.keys(all).filter((n) => n.startsWith('worker-gpu'));
  expect(gpu.sort()).toEqual(gpuWorkers);
  for (const name of gpu) {
    const index = /^worker-gpu-(\d+)$/.exec(name)![1];
    expect(all[name].deploy?.resources?.reservations?.devices).toEqual([
      { driver: 'nvidia', device_ids: [index], capabilities: ['gpu'] },
    ]);
    expect(all[name].deploy?.replicas).toBeUndefined(); // a replica would share the device
    // Inside the container the one GPU is device 0: a CUDA_VISIBLE_DEVICES of the host's index would hide it.
    expect(all[name].environment).not.toHaveProperty('CUDA_VISIBLE_DEVICES');
  }
}

/** Where a named volume is mounted in a service. */
function mountOf(service: Service, volume: string): string | undefined {
  return service.volumes?.map((v) => v.split(':')).find(([src]) => src === volume)?.[1];
}

describe('docker-compose.yml', () => {
  test('services and top-level keys (no obsolete `version`)', () => {
    expect(Object.keys(services).sort()).toEqual(['api', 'redis', 's3', 's3-init', ...workers].sort());
    expect(compose.version).toBeUndefined();
    for (const key of Object.keys(compose))
      expect(['services', 'volumes'].includes(key) || key.startsWith('x-')).toBe(true);
  });

  test('redis: redis 7, AOF fsync every second, noeviction, a required password, loopback port by default, a volume, a health check', () => {
    const r = services.redis;
    expect(r.image).toMatch(/^redis:7(\b|$)/);
    const cmd = r.command!;
    const arg = (flag: string) => cmd[cmd.indexOf(flag) + 1];
    expect(cmd[0]).toBe('redis-server');
    expect([arg('--appendonly'), arg('--appendfsync'), arg('--maxmemory-policy')]).toEqual([
      'yes',
      'everysec',
      'noeviction',
    ]);
    // A password is required: no default anyone could guess.
    expect(arg('--requirepass')).toMatch(/^\$\{REDIS_PASSWORD:\?[^}]+\}$/);
    expect(() => interpolate(arg('--requirepass'), {})).toThrow(/REDIS_PASSWORD/);
    expect(interpolate(arg('--requirepass'))).toBe(SETUP.REDIS_PASSWORD);
    // Published for workers on other machines, on this host's loopback unless REDIS_BIND says otherwise.
    expect(r.ports?.map((p) => interpolate(p))).toEqual(['127.0.0.1:6379:6379']);
    expect(interpolate(r.ports![0], { REDIS_BIND: '10.0.0.1' })).toBe('10.0.0.1:6379:6379');
    expect(r.volumes?.some((v) => v.endsWith(':/data'))).toBe(true);
    expect(r.environment?.REDISCLI_AUTH).toBe(arg('--requirepass')); // the health check authenticates
    expect(r.healthcheck?.test.join(' ')).toMatch(/redis-cli ping/);
  });

  test('every app service reaches redis with the same password, and waits for it to be healthy', () => {
    const password = services.redis.command![services.redis.command!.indexOf('--requirepass') + 1];
    for (const name of appServices) {
      const env = services[name].environment!;
      for (const e of [SETUP, { REDIS_PASSWORD: 'other-pw' }] as Array<Record<string, string>>) {
        const url = new URL(interpolate(env.REDIS_URL!, e));
        expect([url.protocol, url.hostname, url.port, url.password]).toEqual([
          'redis:',
          'redis',
          '6379',
          interpolate(password, e),
        ]);
      }
      expect(() => interpolate(env.REDIS_URL!, {})).toThrow(/REDIS_PASSWORD/);
      expect(services[name].depends_on?.redis.condition).toBe('service_healthy');
      expect(services[name].depends_on?.['s3-init'].condition).toBe('service_completed_successfully');
      expect(services[name].init).toBe(true); // signals reach node, zombies are reaped
    }
  });

  test('api: the api role on 0.0.0.0:3000, published, API keys required, a /health check', () => {
    const api = services.api;
    expect(api.command).toEqual(['node', 'apps/api/dist/main.js']);
    expect(api.environment).toMatchObject({ HOST: '0.0.0.0', PORT: '3000' });
    // Compose itself stops without API_KEYS, with a message saying what to set.
    expect(api.environment!.API_KEYS).toMatch(/^\$\{API_KEYS:\?[^}]*API_KEYS=tenant:sha256[^}]*\}$/);
    expect(() => interpolate(api.environment!.API_KEYS!, { REDIS_PASSWORD: 'x' })).toThrow(/API_KEYS/);
    for (const v of ['ADMIN_KEY_HASH', 'RATE_LIMIT_RPS', 'MAX_QUEUED_JOBS_PER_TENANT'])
      expect(api.environment![v]).toBeNull(); // pass-through form
    expect(api.ports).toHaveLength(1);
    expect(interpolate(api.ports![0])).toBe('127.0.0.1:3000:3000');
    expect(interpolate(api.ports![0], { API_BIND: '0.0.0.0', API_PORT: '8080' })).toBe('0.0.0.0:8080:3000');
    expect(api.healthcheck?.test.join(' ')).toMatch(/127\.0\.0\.1:3000\/health/);
  });

  test("the api's own configuration check accepts the compose environment with keys, and refuses it without", () => {
    const env = (e: Record<string, string>) => envOf(services.api, e);
    const config = loadConfig(env(SETUP));
    expect([config.host, config.apiKeys.map((k) => k.tenant)]).toEqual(['0.0.0.0', ['acme']]);
    expect(new URL(config.redisUrl).password).toBe(SETUP.REDIS_PASSWORD);
    // Even if Compose's own check were bypassed (API_KEYS set but empty), the api refuses 0.0.0.0 without keys.
    const noKeys = { ...env(SETUP), API_KEYS: '' };
    expect(() => loadConfig(noKeys)).toThrow(/refusing to listen on HOST=0\.0\.0\.0 without API keys/);
  });

  test("every variable set in an app service is one its configuration reads (or the GPU runtime's)", () => {
    const reads: Record<string, string[]> = {
      api: apiVariables(),
      worker: workerVariables(),
      ...Object.fromEntries(gpuWorkers.map((n) => [n, [...workerVariables(), ...GPU_RUNTIME]])),
    };
    for (const name of appServices) {
      const unknown = Object.keys(services[name].environment!).filter((v) => !reads[name].includes(v));
      expect({ service: name, unknown }).toEqual({ service: name, unknown: [] });
    }
  });

  test('every variable the compose file takes from the shell or .env is described in its header', () => {
    expect(
      undescribedVariables(
        'docker-compose.yml',
        appServices.map((n) => services[n]),
      ),
    ).toEqual([]);
  });

  test('workers scale: no container_name anywhere, ports only on the api, Redis and the S3 server', () => {
    for (const [name, s] of Object.entries(services)) {
      expect(s.container_name).toBeUndefined();
      if (!['api', 'redis', 's3'].includes(name)) expect(s.ports).toBeUndefined();
    }
    for (const name of workers) expect(services[name].command).toEqual(['node', 'apps/worker/dist/main.js']);
  });

  test('CPU workers: two replicas by default (wasm runs one thread per process), CPU_WORKERS changes it', () => {
    const replicas = String(services.worker.deploy?.replicas);
    expect(interpolate(replicas)).toBe('2');
    expect(interpolate(replicas, { CPU_WORKERS: '8' })).toBe('8');
    for (const g of gpuWorkers) expect(services[g].deploy?.replicas).toBeUndefined(); // one service per GPU
  });

  test('CPU worker: wasm backend on the cpu and any queues, same image as the api', () => {
    const w = services.worker;
    expect(w.environment).toMatchObject({ RELU_LSTM_BACKEND: 'wasm', WORKER_QUEUES: 'cpu,any' });
    expect(w.profiles).toBeUndefined(); // started by a plain `docker compose up`
    expect(w.build).toEqual(services.api.build);
    expect(w.image).toBe(services.api.image);
    expect(w.build).toEqual({ context: '.', dockerfile: 'Dockerfile' });
  });

  test('GPU workers: one service per GPU, pinned by device_ids; profile gpu, Dockerfile.gpu, TF and CUDA cache settings on a volume', () => {
    expectPinnedGpus(services);
    for (const name of gpuWorkers) {
      const g = services[name];
      expect(g.profiles).toEqual(['gpu']);
      expect(g.build).toEqual({ context: '.', dockerfile: 'Dockerfile.gpu' });
      expect(g.image).not.toBe(services.worker.image);
      expect(g.environment).toMatchObject({
        RELU_LSTM_BACKEND: 'tensorflow',
        WORKER_QUEUES: 'gpu,any',
        TF_FORCE_GPU_ALLOW_GROWTH: 'true',
      });
      const cachePath = g.environment!.CUDA_CACHE_PATH!;
      const cacheVolume = g.volumes!.map((v) => v.split(':')).find(([, target]) => target === cachePath)?.[0];
      expect(cacheVolume).toBeDefined();
      expect(compose.volumes).toHaveProperty(cacheVolume!);
      expect(Number(g.environment!.ENGINE_START_TIMEOUT_MS)).toBeGreaterThanOrEqual(300_000);
      expect(g.healthcheck?.start_period).toBe('1800s'); // the first start JIT-compiles kernels
      expect(g.healthcheck?.test).toEqual(services.worker.healthcheck?.test);
    }
    // Everything but the device is one definition.
    const { deploy: _a, ...first } = services['worker-gpu-0'];
    const { deploy: _b, ...second } = services['worker-gpu-1'];
    expect(second).toEqual(first);
  });

  test('the S3 server: SeaweedFS with the one identity of the AWS_* variables (required), a volume, loopback port by default', () => {
    const s3 = services.s3;
    expect(interpolate(s3.image!)).toMatch(/^chrislusf\/seaweedfs:/);
    const script = s3.command!.join(' ');
    expect(script).toMatch(/weed server .*-s3 .*-s3\.port=8333 .*-s3\.config=\/tmp\/s3\.json/);
    expect(script).toContain('"$$S3_ACCESS_KEY" "$$S3_SECRET_KEY"'); // Compose leaves `$` for the shell
    expect(envOf(s3)).toEqual({ S3_ACCESS_KEY: 'runner-key', S3_SECRET_KEY: 'runner-secret' });
    expect(() => envOf(s3, { ...SETUP, AWS_SECRET_ACCESS_KEY: '' })).toThrow(/AWS_SECRET_ACCESS_KEY/);
    expect(mountOf(s3, 's3-data')).toBe('/data');
    expect(s3.ports?.map((p) => interpolate(p))).toEqual(['127.0.0.1:8333:8333']);
    expect(interpolate(s3.ports![0], { S3_BIND: '10.0.0.1' })).toBe('10.0.0.1:8333:8333');
  });

  test('s3-init creates the bucket the stores name, with the app image and environment', () => {
    const init = services['s3-init'];
    expect([init.image, init.build]).toEqual([services.api.image, services.api.build]);
    // The shared part of the app services' environment (x-app-env), nothing else.
    expect(Object.keys(init.environment!)).toEqual(
      expect.arrayContaining(['ARTIFACT_DIR', 'S3_ENDPOINT', 'AWS_REGION']),
    );
    for (const [k, v] of Object.entries(init.environment!))
      expect([k, services.worker.environment![k]]).toEqual([k, v]);
    expect(init.command!.join(' ')).toMatch(/CreateBucketCommand\(\{ Bucket: bucket \}\)/);
    expect(init.command!.join(' ')).toContain('new URL(process.env.ARTIFACT_DIR).host');
    expect(init.depends_on?.s3.condition).toBe('service_started');
  });

  test('every app service uses the S3 server, through the shared variables, and mounts no shared directory', () => {
    const s3 = envOf(services.s3);
    for (const n of appServices) {
      const env = envOf(services[n]);
      expect(env).toMatchObject({
        ARTIFACT_DIR: 's3://relu-lstm/artifacts',
        DATASET_DIR: 's3://relu-lstm/datasets',
        S3_ENDPOINT: 'http://s3:8333',
        S3_FORCE_PATH_STYLE: 'true',
        AWS_ACCESS_KEY_ID: s3.S3_ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY: s3.S3_SECRET_KEY,
      });
      expect(interpolate(services[n].environment!.ARTIFACT_DIR!, { ...SETUP, S3_BUCKET: 'b' })).toBe(
        's3://b/artifacts',
      );
      expect(services[n].volumes?.filter((v) => !v.startsWith('cuda-cache:')) ?? []).toEqual([]);
    }
    // Both configurations accept what compose gives them.
    expect(loadConfig(envOf(services.api)).artifactDir).toBe('s3://relu-lstm/artifacts');
    for (const n of workers) expect(loadWorkerConfig(envOf(services[n])).datasetDir).toBe('s3://relu-lstm/datasets');
  });

  test('every named volume used is declared, every declared one used', () => {
    const used = new Set(
      Object.values(services)
        .flatMap((s) => s.volumes ?? [])
        .map((v) => v.split(':')[0])
        .filter((src) => !src.startsWith('.') && !src.startsWith('/')),
    );
    expect([...used].sort()).toEqual(Object.keys(compose.volumes).sort());
  });
});

describe('compose.worker-host.yml', () => {
  const hostServices = workerHost.services;
  const ON = { ...SETUP, MAIN_HOST: '10.0.0.1' };
  const WORKER_ONLY = { MAIN_HOST: 'x', REDIS_PASSWORD: 'x', AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'x' };

  test('workers only (CPU and one per GPU), as defined in docker-compose.yml but for where Redis and S3 are', () => {
    expect(Object.keys(hostServices).sort()).toEqual([...workers].sort());
    expectPinnedGpus(hostServices);
    for (const n of workers) {
      const { environment: hostEnv, depends_on: dep, ...here } = hostServices[n];
      const { environment: mainEnv, depends_on: _d, volumes: _v, ...there } = services[n];
      expect(dep).toBeUndefined(); // nothing here to wait for
      const { volumes: hostVolumes, ...hereRest } = here;
      expect(hereRest).toEqual(there);
      expect(hostVolumes ?? []).toEqual(services[n].volumes ?? []);
      // The same variables, the same values, except those that say where the first machine is.
      const where = ['REDIS_URL', 'S3_ENDPOINT'];
      expect(Object.keys(hostEnv!).sort()).toEqual(Object.keys(mainEnv!).sort());
      const [h, m] = [envOf(hostServices[n], ON), envOf(services[n], ON)];
      for (const k of Object.keys(h).filter((k) => !where.includes(k))) expect([k, h[k]]).toEqual([k, m[k]]);
    }
    expect(Object.keys(workerHost.volumes)).toEqual(['cuda-cache']);
  });

  test("its workers reach the first machine's Redis and S3 server with its credentials, all required", () => {
    for (const n of workers) {
      const env = envOf(hostServices[n], ON);
      const redis = new URL(env.REDIS_URL);
      expect([redis.protocol, redis.hostname, redis.port, redis.password]).toEqual([
        'redis:',
        '10.0.0.1',
        '6379',
        SETUP.REDIS_PASSWORD,
      ]);
      expect(env).toMatchObject({
        S3_ENDPOINT: 'http://10.0.0.1:8333',
        ARTIFACT_DIR: 's3://relu-lstm/artifacts',
        DATASET_DIR: 's3://relu-lstm/datasets',
        AWS_ACCESS_KEY_ID: SETUP.AWS_ACCESS_KEY_ID,
        AWS_SECRET_ACCESS_KEY: SETUP.AWS_SECRET_ACCESS_KEY,
      });
      for (const required of Object.keys(WORKER_ONLY))
        expect(() => envOf(hostServices[n], { ...ON, [required]: '' })).toThrow(new RegExp(required));
      const config = loadWorkerConfig(env);
      expect([config.redisUrl, config.artifactDir]).toEqual([env.REDIS_URL, 's3://relu-lstm/artifacts']);
      const unknown = Object.keys(hostServices[n].environment!).filter(
        (v) => ![...workerVariables(), ...GPU_RUNTIME].includes(v),
      );
      expect(unknown).toEqual([]);
    }
  });

  test('every variable it takes from the shell or .env is described in its header', () => {
    expect(
      undescribedVariables(
        'compose.worker-host.yml',
        workers.map((n) => hostServices[n]),
      ),
    ).toEqual([]);
  });
});

describe('Dockerfiles', () => {
  const cpu = read('Dockerfile');
  const gpu = read('Dockerfile.gpu');
  /** Instructions after the last FROM (the image that runs). */
  const finalStage = (df: string) => df.slice(df.lastIndexOf('\nFROM '));
  const argDefault = (df: string, name: string) => new RegExp(`^ARG ${name}=(\\S+)`, 'm').exec(df)?.[1];
  const rootPkg = JSON.parse(read('package.json')) as { workspaces: string[]; scripts: Record<string, string> };

  test('the files exist, with a .dockerignore that keeps node_modules, dist and .git out', () => {
    for (const f of ['Dockerfile', 'Dockerfile.gpu', '.dockerignore']) expect(existsSync(join(ROOT, f))).toBe(true);
    const ignored = read('.dockerignore')
      .split('\n')
      .map((l) => l.trim());
    expect(ignored).toEqual(expect.arrayContaining(['**/node_modules', '**/dist', '.git']));
  });

  test('CPU image: node:22-bookworm-slim, npm ci and npm run build, a non-root user', () => {
    // Node 20 is past its end of life; 22 is the newest line the GPU image's tfjs-node runs on (Dockerfile.gpu).
    expect(argDefault(cpu, 'NODE_IMAGE')).toBe('node:22-bookworm-slim');
    expect(argDefault(cpu, 'NODE_IMAGE')).toBe(argDefault(gpu, 'NODE_IMAGE'));
    expect(cpu).toMatch(/^FROM \$\{NODE_IMAGE\} AS build$/m);
    expect(finalStage(cpu)).toMatch(/^FROM \$\{NODE_IMAGE\} AS runtime$/m);
    expect(cpu).toMatch(/^RUN npm ci\b/m);
    expect(cpu).toMatch(/npm run build/);
    expect(cpu).toMatch(/npm ci --omit=dev/);
    expect(finalStage(cpu)).toMatch(/^USER node$/m);
    expect(finalStage(cpu)).toMatch(/^CMD \["node", "apps\/api\/dist\/main\.js"\]$/m);
  });

  test('GPU image: CUDA 11.x runtime with cuDNN 8, Node 22, tfjs-node-gpu 4.22.0 with its install script checked, TF/CUDA env, non-root', () => {
    expect(argDefault(gpu, 'CUDA_IMAGE')).toMatch(/^nvidia\/cuda:11\.\d+\.\d+-cudnn8-runtime-ubuntu\d+\.\d+$/);
    expect(argDefault(gpu, 'NODE_IMAGE')).toBe('node:22-bookworm-slim');
    expect(finalStage(gpu)).toMatch(/^FROM \$\{CUDA_IMAGE\} AS runtime$/m);
    expect(gpu).toMatch(/^FROM \$\{NODE_IMAGE\} AS node$/m);
    expect(gpu).toMatch(/^FROM \$\{CUDA_IMAGE\} AS build$/m); // native addons built on the runtime's base
    expect(finalStage(gpu)).toMatch(/^COPY --from=node \/usr\/local\/bin\/node \/usr\/local\/bin\/node$/m);
    const lstmPeer = (JSON.parse(read('libs/lstm/package.json')) as { peerDependencies: Record<string, string> })
      .peerDependencies['@tensorflow/tfjs-node-gpu'];
    expect(gpu).toContain(
      `npm install --no-save --omit=dev --no-audit --no-fund @tensorflow/tfjs-node-gpu@${lstmPeer}`,
    );
    expect(lstmPeer).toBe('4.22.0');
    expect(gpu).toMatch(/allowScripts\[@tensorflow\/tfjs-node-gpu\]=true/);
    expect(gpu).toMatch(/ls node_modules\/@tensorflow\/tfjs-node-gpu\/deps\/lib\/libtensorflow\.so\*/);
    expect(gpu).toMatch(/TF_FORCE_GPU_ALLOW_GROWTH=true/);
    expect(gpu).toMatch(/CUDA_CACHE_PATH=\/cuda-cache/);
    expect(finalStage(gpu)).toMatch(/^USER node$/m);
    expect(finalStage(gpu)).toMatch(/useradd --uid 1000/); // same uid as the CPU image's node user: one owner for /data
  });

  test('both images copy the manifest of every workspace before npm ci', () => {
    for (const df of [cpu, gpu]) {
      for (const ws of rootPkg.workspaces) expect(df).toContain(`COPY ${ws}/package.json ${ws}/`);
    }
  });

  test('what compose runs is what the build produces and what the npm start scripts run', () => {
    const refs = (JSON.parse(read('tsconfig.build.json')) as { references: Array<{ path: string }> }).references.map(
      (r) => r.path,
    );
    for (const [app, script] of [
      ['api', 'start:api'],
      ['worker', 'start:worker'],
    ] as const) {
      expect(refs).toContain(`apps/${app}`);
      expect(existsSync(join(ROOT, `apps/${app}/src/main.ts`))).toBe(true);
      const tsconfig = JSON.parse(read(`apps/${app}/tsconfig.json`)) as {
        compilerOptions: { rootDir: string; outDir: string };
      };
      expect(tsconfig.compilerOptions).toMatchObject({ rootDir: 'src', outDir: 'dist' });
      expect(rootPkg.scripts[script]).toMatch(new RegExp(`node apps/${app}/dist/main\\.js$`));
    }
  });
});

describe('the worker health check, run against Redis', () => {
  const run = promisify(execFile);
  const script = services.worker.healthcheck!.test[3];
  const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  let redis: Redis;
  let prefix: string;
  beforeAll(() => {
    redis = new Redis(redisUrl);
    prefix = `test-compose-${randomUUID()}`;
  });
  afterAll(async () => {
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length) await redis.del(...keys);
    await redis.quit();
  });

  const check = () =>
    run(process.execPath, ['-e', script], {
      cwd: ROOT,
      env: { ...process.env, REDIS_URL: redisUrl, QUEUE_PREFIX: prefix },
      timeout: 20_000,
    }).then(
      () => 0,
      (e: { code?: number }) => e.code ?? -1,
    );

  async function heartbeat(id: string, host: string, expiresAt: number): Promise<void> {
    const hb = {
      id,
      backend: 'wasm',
      gpu: false,
      device: 'wasm',
      host,
      pid: 1,
      queues: ['cpu', 'any'],
      currentJobId: null,
      startedAt: 1,
      at: Date.now(),
    };
    await redis.set(`${prefix}:worker:${id}`, JSON.stringify(hb));
    await redis.zadd(`${prefix}:workers`, expiresAt, id);
  }

  test("unhealthy with no heartbeat, or only other hosts' or expired ones; healthy with its own live one", async () => {
    expect(await check()).toBe(1);
    await heartbeat('other-1', 'another-container', Date.now() + 15_000);
    await heartbeat('mine-old', hostname(), Date.now() - 1_000);
    expect(await check()).toBe(1);
    await heartbeat('mine-1', hostname(), Date.now() + 15_000);
    expect(await check()).toBe(0);
  });
});
