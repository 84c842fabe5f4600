// Pure parts of the api, loaded directly (they import no NestJS): configuration and the CSV layout.
import { join } from 'node:path';
import { DEFAULT_LIMITS, limitEnvName } from '@relu-lstm/jobs';
import { ConfigError, isLoopback, loadConfig } from '../src/config';
import { KeyRing, parseApiKeys, sha256 } from '../src/http/api-keys';
import { ROUTES, accessOf, accessRules, type RouteSpec } from '../src/routes';

describe('loadConfig', () => {
  test('defaults', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      port: 3000,
      host: '127.0.0.1',
      redisUrl: 'redis://127.0.0.1:6379',
      queuePrefix: 'relu-lstm',
      bodyLimit: 10 * 1024 * 1024,
      inferWaitMs: 30_000,
      limits: DEFAULT_LIMITS,
    });
    expect(c.artifactDir).toBe(join(process.cwd(), 'data', 'artifacts'));
    expect(loadConfig({ DATASET_DIR: 'file:///tmp/d' }).datasetDir).toBe('/tmp/d');
    expect(() => loadConfig({ ARTIFACT_DIR: 'ftp://host/x' })).toThrow(
      /ARTIFACT_DIR: expected a directory path or a URL with scheme file:, s3:/,
    );
  });

  test('sizes, limits and empty values', () => {
    const c = loadConfig({
      BODY_LIMIT: '512kb',
      DATASET_BODY_LIMIT: '2mb',
      PORT: '',
      LIMIT_MAX_HIDDEN_SIZE: '64',
      JOB_ATTEMPTS_TRAIN: '5',
    });
    expect(c.bodyLimit).toBe(512 * 1024);
    expect(c.datasetBodyLimit).toBe(2 * 1024 * 1024);
    expect(c.port).toBe(3000);
    expect(c.limits.maxHiddenSize).toBe(64);
    expect(c.jobPolicy.attempts.train).toBe(5);
    expect(limitEnvName('maxInlineElements')).toBe('LIMIT_MAX_INLINE_ELEMENTS');
  });

  test('every bad variable is named', () => {
    expect(() =>
      loadConfig({ PORT: '70000', REDIS_URL: 'http://x', BODY_LIMIT: 'lots', QUEUE_PREFIX: 'has space' }),
    ).toThrow(ConfigError);
    try {
      loadConfig({ PORT: '70000', REDIS_URL: 'http://x', BODY_LIMIT: 'lots', QUEUE_PREFIX: 'has space' });
    } catch (e) {
      for (const v of ['PORT', 'REDIS_URL', 'BODY_LIMIT', 'QUEUE_PREFIX']) expect((e as Error).message).toContain(v);
    }
  });
});

describe('API keys and the listen address', () => {
  const hex = (k: string) => sha256(k).toString('hex');

  test('no keys: loopback only; HOST=0.0.0.0 or a LAN address is refused, naming the way out', () => {
    expect(loadConfig({}).apiKeys).toEqual([]);
    for (const host of ['127.0.0.1', 'localhost', '::1', '[::1]', '127.0.0.2'])
      expect(loadConfig({ HOST: host }).host).toBe(host);
    for (const host of ['0.0.0.0', '::', '192.0.2.2', 'example.com']) {
      expect(isLoopback(host)).toBe(false);
      expect(() => loadConfig({ HOST: host })).toThrow(/refusing to listen on HOST=.* without API keys.*API_KEYS/);
    }
    expect(loadConfig({ HOST: '0.0.0.0', API_KEYS: `acme:${hex('k1')}` }).host).toBe('0.0.0.0');
  });

  test('API_KEYS and API_KEYS_FILE (lines or JSON) are read as tenant -> SHA-256; only hashes are kept', () => {
    const files: Record<string, string> = {
      '/keys.txt': `# rotation: two keys for beta\nbeta:${hex('kb1')}\nbeta:${hex('kb2')}\n`,
      '/keys.json': JSON.stringify([{ tenant: 'gamma', sha256: hex('kg') }]),
    };
    const read = (p: string) =>
      files[p] ??
      (() => {
        throw Object.assign(new Error('nope'), { code: 'ENOENT' });
      })();
    const c = loadConfig({ API_KEYS: `alpha:${hex('ka')}`, API_KEYS_FILE: '/keys.txt' }, read);
    expect(c.apiKeys.map((k) => k.tenant)).toEqual(['alpha', 'beta', 'beta']);
    expect(JSON.stringify(c)).not.toMatch(/"ka"|kb1/);
    const ring = new KeyRing(c.apiKeys, null);
    expect([
      ring.tenantOf('ka'),
      ring.tenantOf('kb1'),
      ring.tenantOf('kb2'),
      ring.tenantOf('kx'),
      ring.tenantOf(''),
    ]).toEqual(['alpha', 'beta', 'beta', null, null]);
    expect(ring.tenants()).toEqual(['alpha', 'beta']);
    expect(new KeyRing(loadConfig({ API_KEYS_FILE: '/keys.json' }, read).apiKeys, null).tenantOf('kg')).toBe('gamma');
    expect(() => loadConfig({ API_KEYS_FILE: '/missing' }, read)).toThrow(
      /API_KEYS_FILE: cannot read \/missing \(ENOENT\)/,
    );
  });

  test('a plain key, a bad tenant, a hash shared by two tenants or a bad admin hash stop start-up without echoing the value', () => {
    const bad: Array<[Record<string, string>, RegExp]> = [
      [
        { API_KEYS: 'acme:my-plain-secret-key' },
        /API_KEYS entry 1 \(tenant acme\): expected the 64-hex-digit SHA-256 of the key, got 19 characters/,
      ],
      [{ API_KEYS: `a:b:${hex('k')}` }, /entry 1 \(tenant a\): expected the 64-hex-digit/],
      [{ API_KEYS: `../x:${hex('k')}` }, /entry 1: expected <tenant>:<sha256 hex of the key>/],
      [{ API_KEYS: `a:${hex('k')},b:${hex('k')}` }, /one key hash is configured for both tenant a and tenant b/],
      [
        { ADMIN_KEY_HASH: 'admin-secret' },
        /ADMIN_KEY_HASH: expected the 64-hex-digit SHA-256 of the admin key \(got 12 characters\)/,
      ],
      [{ REDIS_URL: 'http://:hunter2@x' }, /REDIS_URL: .* \(got 17 characters\)/],
    ];
    for (const [env, message] of bad) {
      expect(() => loadConfig(env)).toThrow(ConfigError);
      expect(() => loadConfig(env)).toThrow(message);
      expect(() => loadConfig(env)).not.toThrow(/my-plain-secret-key|admin-secret|hunter2/);
    }
  });

  test('admin key, rate limits and the job quota from the environment', () => {
    const c = loadConfig({
      ADMIN_KEY_HASH: hex('adm'),
      RATE_LIMIT_RPS: '50',
      RATE_LIMIT_ANON_RPS: '0',
      MAX_QUEUED_JOBS_PER_TENANT: '7',
    });
    expect(new KeyRing([], c.adminKeyHash).isAdmin('adm')).toBe(true);
    expect(new KeyRing([], c.adminKeyHash).isAdmin('adm ')).toBe(false);
    expect(c.rateLimit).toEqual({ tenant: { rps: 50, burst: 100 }, anonymous: { rps: 0, burst: 20 } });
    expect(c.maxLiveJobsPerTenant).toBe(7);
    expect(loadConfig({}).rateLimit.tenant).toEqual({ rps: 1000, burst: 2000 });
    expect(loadConfig({}).maxLiveJobsPerTenant).toBe(200);
    expect(() => loadConfig({ MAX_QUEUED_JOBS_PER_TENANT: '-1', RATE_LIMIT_RPS: 'fast' })).toThrow(
      /MAX_QUEUED_JOBS_PER_TENANT[\s\S]*RATE_LIMIT_RPS|RATE_LIMIT_RPS[\s\S]*MAX_QUEUED_JOBS_PER_TENANT/,
    );
  });

  test('parseApiKeys skips blanks and comments, accepts commas and newlines', () => {
    expect(parseApiKeys(` a:${hex('1')} ,\n\n# c\nb:${hex('2')}`, 'X').map((e) => e.tenant)).toEqual(['a', 'b']);
    expect(parseApiKeys('  ', 'X')).toEqual([]);
    expect(() => parseApiKeys('[{"tenant":"a"}]', 'F')).toThrow(/F entry 1 \(tenant a\): expected the 64-hex-digit/);
  });
});

describe('access rules from the route table', () => {
  test('a request path takes the rule of the route it reaches, as Express matches it', () => {
    const cases = [
      '/health',
      '/HEALTH/',
      '/v1/admin/overview',
      '/V1/Admin/Overview/',
      '/v1/jobs',
      `/v1/jobs/abc/artifacts/model.json`,
    ];
    expect(cases.map((p) => [p, accessOf(p)])).toEqual([
      ['/health', 'public'],
      ['/HEALTH/', 'public'],
      ['/v1/admin/overview', 'admin'],
      ['/V1/Admin/Overview/', 'admin'],
      ['/v1/jobs', 'tenant'],
      ['/v1/jobs/abc/artifacts/model.json', 'tenant'],
    ]);
  });

  test('paths no route matches take the tenant rule, whatever they look like', () => {
    for (const p of [
      '/',
      '/health/x',
      '/healthz',
      '/x/health',
      '/v1/admin',
      '/v1/admin/overview/x',
      '/v1/jobs/a/b/c/d/e',
    ])
      expect([p, accessOf(p)]).toEqual([p, 'tenant']);
  });

  test('every route of the table is reached by its own path', () => {
    for (const r of ROUTES) expect([r.path, accessOf(r.path.replace(/:\w+/g, 'x1'))]).toEqual([r.path, r.access]);
  });

  test('one path with two rules is refused', () => {
    const route = (method: RouteSpec['method'], access: RouteSpec['access']): RouteSpec => ({
      method,
      path: '/v1/x/:id',
      access,
      summary: '',
      responses: {},
    });
    expect(() => accessRules([route('GET', 'tenant'), route('DELETE', 'admin')])).toThrow(
      'routes: /v1/x/:id has two access rules (tenant and admin)',
    );
    expect(accessRules([route('GET', 'admin'), route('DELETE', 'admin')])('/v1/x/7')).toBe('admin');
  });
});
