/**
 * Every route the api serves, with who may call it. The access test (test/access.test.ts) walks
 * this list as nobody, as the wrong tenant and as the owner, and checks it against the routes Nest
 * actually maps (its `Mapped {path, METHOD} route` start-up lines), so a new route cannot be added
 * without being listed, and so tested, here. Plain data: importable without NestJS.
 */
export type RouteAccess = 'public' | 'tenant' | 'admin';

export interface RouteSpec {
  method: 'GET' | 'POST' | 'DELETE';
  /** As Nest maps it: `/v1/jobs/:id`. */
  path: string;
  access: RouteAccess;
  /** The resource named by `:id` (tenant routes): another tenant gets 404 for it. */
  owns?: 'job' | 'dataset';
}

export const ROUTES: readonly RouteSpec[] = [
  { method: 'GET', path: '/health', access: 'public' },
  { method: 'GET', path: '/ready', access: 'public' },
  { method: 'POST', path: '/v1/jobs/train', access: 'tenant' },
  { method: 'POST', path: '/v1/jobs/infer', access: 'tenant' },
  { method: 'GET', path: '/v1/jobs', access: 'tenant' },
  { method: 'GET', path: '/v1/jobs/:id', access: 'tenant', owns: 'job' },
  { method: 'DELETE', path: '/v1/jobs/:id', access: 'tenant', owns: 'job' },
  { method: 'GET', path: '/v1/jobs/:id/events', access: 'tenant', owns: 'job' },
  { method: 'GET', path: '/v1/jobs/:id/artifacts', access: 'tenant', owns: 'job' },
  { method: 'GET', path: '/v1/jobs/:id/artifacts/:name', access: 'tenant', owns: 'job' },
  { method: 'POST', path: '/v1/datasets', access: 'tenant' },
  { method: 'GET', path: '/v1/datasets/:id', access: 'tenant', owns: 'dataset' },
  { method: 'GET', path: '/v1/workers', access: 'tenant' },
  { method: 'GET', path: '/docs', access: 'tenant' },
  { method: 'GET', path: '/docs/openapi.json', access: 'tenant' },
  { method: 'GET', path: '/v1/admin/overview', access: 'admin' },
];
