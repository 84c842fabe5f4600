// The dashboard's files as the real api serves them (no browser: test/dashboard.browser.test.ts drives
// the page): content types, the page's own CSP, caching (hashed asset URLs, ETags, 304), gzip, and
// public access while the API itself needs a key. Needs the build (`npm run build` writes dist/ui).
import { createHash } from 'node:crypto';
import { request, type IncomingHttpHeaders } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { startApi, type ApiProcess } from './harness';

let api: ApiProcess;
const KEY = 'dashboard-test-key';

beforeAll(async () => {
  api = await startApi({ API_KEYS: `acme:${createHash('sha256').update(KEY).digest('hex')}` });
});

afterAll(async () => {
  await api?.stop();
});

function get(
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, api.url), { headers: { connection: 'close', ...headers }, agent: false }, (r) => {
      const chunks: Buffer[] = [];
      r.on('data', (c: Buffer) => chunks.push(c));
      r.on('end', () => resolve({ status: r.statusCode ?? 0, headers: r.headers, body: Buffer.concat(chunks) }));
      r.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

test('GET /ui: the page, without a key, under its own CSP, revalidated each time', async () => {
  const r = await get('/ui');
  expect(r.status).toBe(200);
  expect(r.headers['content-type']).toBe('text/html; charset=utf-8');
  expect(r.headers['cache-control']).toBe('no-cache');
  const csp = String(r.headers['content-security-policy']);
  expect(csp).toContain("script-src 'self'");
  expect(csp).toContain("connect-src 'self'");
  expect(csp).not.toContain('upgrade-insecure-requests'); // plain-HTTP deployments load their assets
  expect(r.headers['x-content-type-options']).toBe('nosniff'); // helmet's other headers stay
  const html = r.body.toString('utf8');
  expect(html).toMatch(/<script src="\/ui\/app\.js\?v=[0-9a-f]{12}"><\/script>/);
  expect(html).toMatch(/<link rel="stylesheet" href="\/ui\/app\.css\?v=[0-9a-f]{12}" \/>/);
  const again = await get('/ui', { 'if-none-match': String(r.headers.etag) });
  expect([again.status, again.body.length]).toEqual([304, 0]);
});

test.each([
  ['/ui/app.js', 'text/javascript; charset=utf-8'],
  ['/ui/app.css', 'text/css; charset=utf-8'],
])('GET %s: cached for good (its URL carries its hash), gzipped when asked', async (path, type) => {
  const html = (await get('/ui')).body.toString('utf8');
  const hash = new RegExp(`${path.replace('.', '\\.')}\\?v=([0-9a-f]{12})`).exec(html)![1];
  const plain = await get(`${path}?v=${hash}`);
  expect(plain.status).toBe(200);
  expect(plain.headers['content-type']).toBe(type);
  expect(plain.headers['cache-control']).toBe('public, max-age=31536000, immutable');
  expect(plain.headers['content-encoding']).toBeUndefined();
  expect(createHash('sha256').update(plain.body).digest('hex').slice(0, 12)).toBe(hash);
  const zipped = await get(path, { 'accept-encoding': 'gzip, br' });
  expect(zipped.headers['content-encoding']).toBe('gzip');
  expect(zipped.headers.vary).toBe('Accept-Encoding');
  expect(zipped.body.length).toBeLessThan(plain.body.length / 2);
  expect(gunzipSync(zipped.body).equals(plain.body)).toBe(true);
});

test('the API calls the page makes still need the key', async () => {
  expect((await get('/v1/jobs')).status).toBe(401);
  expect((await get('/v1/jobs', { authorization: `Bearer ${KEY}` })).status).toBe(200);
});
