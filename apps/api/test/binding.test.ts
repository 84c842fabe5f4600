// Where the api listens. Without API keys: loopback only, one tenant `default`, said at start-up;
// any other address is refused (exit 2). With keys it may listen on every interface, and still
// serves nothing without a key. Checked from a non-loopback address of this machine.
import { randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import { networkInterfaces } from 'node:os';
import { Redis } from 'ioredis';
import { sha256 } from '../src/http/api-keys';
import { REDIS_URL, dropPrefix, http, startApi } from './harness';

/** An IPv4 address of this machine that is not loopback (the tests need one to be meaningful). */
function externalAddress(): string {
  const a = Object.values(networkInterfaces())
    .flat()
    .find((i) => i && i.family === 'IPv4' && !i.internal);
  if (!a)
    throw new Error(
      'this machine has no non-loopback IPv4 address: the binding tests cannot check reachability from outside loopback',
    );
  return a.address;
}

/** 'open' if a TCP connection to host:port is accepted, else the error code. */
function tryConnect(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = connect({ host, port, timeout: 3000 });
    s.once('connect', () => {
      s.destroy();
      resolve('open');
    });
    s.once('timeout', () => {
      s.destroy();
      resolve('ETIMEDOUT');
    });
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
}

let redis: Redis;
beforeAll(() => {
  redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
});
afterAll(async () => {
  await redis.quit();
});

test('without keys: loopback only, the default tenant, and a start-up line saying so', async () => {
  const api = await startApi(); // HOST=127.0.0.1, no API_KEYS
  try {
    const port = Number(new URL(api.url).port);
    expect(api.output()).toMatch(
      /no API keys configured: serving the single tenant 'default' to anyone on this machine, on loopback only/,
    );
    expect(await tryConnect('127.0.0.1', port)).toBe('open');
    expect(await tryConnect(externalAddress(), port)).toBe('ECONNREFUSED');
    const r = await http(api.url, 'POST', '/v1/jobs/train', {
      body: {
        model: { inputSize: 1, hiddenSize: 2, outputSize: 1 },
        data: { synthetic: { kind: 'sine', samples: 4, seqLen: 3 } },
        training: { epochs: 1, batchSize: 2 },
        device: 'gpu',
      },
    });
    expect(r.status).toBe(202);
    expect(JSON.parse((await redis.get(`${api.prefix}:job:${r.json.id}`))!).tenant).toBe('default');
  } finally {
    await api.stop();
    await dropPrefix(redis, api.prefix);
  }
});

test.each([['0.0.0.0'], ['::'], [externalAddress()]])(
  'without keys, HOST=%s is refused: exit 2 with a clear message',
  async (host) => {
    const failed = await startApi({ HOST: host }).then(
      async (a) => {
        await a.stop();
        return 'it started';
      },
      (e: Error) => e.message,
    );
    expect(failed).toMatch(/exited with 2 before listening/);
    expect(failed).toContain(`refusing to listen on HOST=${host} without API keys`);
    expect(failed).toContain('Configure API_KEYS or API_KEYS_FILE');
  },
);

test('with keys, HOST=0.0.0.0 serves other interfaces too, and only with a key', async () => {
  const key = `k-${randomUUID()}`;
  const api = await startApi({ HOST: '0.0.0.0', API_KEYS: `acme:${sha256(key).toString('hex')}` });
  try {
    const port = Number(new URL(api.url).port);
    expect(api.output()).toMatch(/API keys: 1 for 1 tenants; admin view off/);
    const outside = `http://${externalAddress()}:${port}`;
    expect((await http(outside, 'GET', '/health')).status).toBe(200);
    expect((await http(outside, 'GET', '/v1/jobs')).status).toBe(401);
    expect((await http(outside, 'GET', '/v1/jobs', { headers: { authorization: `Bearer ${key}` } })).json).toEqual({
      items: [],
      nextCursor: null,
    });
  } finally {
    await api.stop();
    await dropPrefix(redis, api.prefix);
  }
});
