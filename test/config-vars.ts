/**
 * The environment variables a config module reads, from its source: the keys of its
 * `const EnvSchema = z.object({ ... })` (plus, for the api, the generated `LIMIT_*` names). Read
 * from the text so the docs and compose tests need no export from the apps.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_LIMITS } from '@relu-lstm/jobs';
import { limitEnvName } from '../apps/api/src/config';

const ROOT = join(__dirname, '..');

export function schemaVariables(source: string): string[] {
  const start = source.indexOf('const EnvSchema = z.object({');
  const end = source.indexOf('\n});', start);
  if (start < 0 || end < 0) throw new Error('no `const EnvSchema = z.object({ ... });` in the source');
  return [...source.slice(start, end).matchAll(/^ {2}([A-Z][A-Z0-9_]*):/gm)].map((m) => m[1]);
}

export const apiConfigSource = (): string => readFileSync(join(ROOT, 'apps/api/src/config.ts'), 'utf8');
export const workerConfigSource = (): string => readFileSync(join(ROOT, 'apps/worker/src/config.ts'), 'utf8');

/** Every variable apps/api/src/config.ts reads. */
export const apiVariables = (): string[] => [...schemaVariables(apiConfigSource()), ...Object.keys(DEFAULT_LIMITS).map(limitEnvName)];
/** Every variable apps/worker/src/config.ts reads. */
export const workerVariables = (): string[] => schemaVariables(workerConfigSource());
