/**
 * The reference docs against the code they describe: every environment variable the api and the
 * worker read is in the configuration table of docs/api.md or docs/worker.md, with the default the
 * code uses, and no table lists a variable the code does not read; every route of
 * apps/api/src/routes.ts and every error code of the contract is in docs/api.md; docs/worker.md
 * names every worker test file.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  API_ERROR_CODES,
  DEFAULT_JOB_POLICY,
  DEFAULT_LIMITS,
  ERROR_CODES,
  limitEnvName,
  type EnvSpec,
  type PayloadLimits,
} from '@relu-lstm/jobs';
import { ROUTES } from '../apps/api/src/routes';
import { API_VARIABLES, WORKER_VARIABLES, apiVariables, workerVariables } from './config-vars';

const ROOT = join(__dirname, '..');
const read = (p: string) => readFileSync(join(ROOT, p), 'utf8');

/** Rows of the table under `## Configuration`: each variable named in its first cell -> the default cell. */
function documentedVariables(doc: string): Map<string, string> {
  const section = doc.slice(doc.indexOf('## Configuration'));
  const table = section.slice(0, section.indexOf('\n#', 1));
  const rows = new Map<string, string>();
  for (const line of table.split('\n').filter((l) => l.startsWith('| `'))) {
    const [names, defaults] = line.split('|').slice(1, 3);
    for (const [, name] of names.matchAll(/`([A-Z][A-Z0-9_]*)`/g)) rows.set(name, defaults.trim());
  }
  return rows;
}

/**
 * The default each variable of the table shows: the first backquoted value of its default cell, or in
 * a row naming several variables with as many values, the n-th for the n-th variable.
 */
function documentedDefaults(doc: string): Map<string, string | undefined> {
  const section = doc.slice(doc.indexOf('## Configuration'));
  const table = section.slice(0, section.indexOf('\n#', 1));
  const defaults = new Map<string, string | undefined>();
  for (const line of table.split('\n').filter((l) => l.startsWith('| `'))) {
    const [names, cell] = line.split('|').slice(1, 3);
    const vars = [...names.matchAll(/`([A-Z][A-Z0-9_]*)`/g)].map((m) => m[1]);
    const values = [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]);
    vars.forEach((v, i) => defaults.set(v, values.length === vars.length ? values[i] : values[0]));
  }
  return defaults;
}

/** Each variable with a default (optional and computed ones have none) has it documented. */
function expectDocumentedDefaults(doc: string, spec: EnvSpec): void {
  const shown = documentedDefaults(doc);
  const withDefault = Object.entries(spec).filter(([, v]) => v.default !== '');
  expect(withDefault.length).toBeGreaterThan(12);
  for (const [name, v] of withDefault)
    expect({ name, documented: shown.get(name) }).toEqual({ name, documented: v.default });
}

describe('docs/api.md', () => {
  const doc = read('docs/api.md');
  const documented = documentedVariables(doc);
  const limitVars = (Object.keys(DEFAULT_LIMITS) as Array<keyof PayloadLimits>).map(limitEnvName);
  const readByCode = apiVariables();

  test('the configuration table lists exactly the variables apps/api/src/config.ts reads', () => {
    expect(readByCode.length).toBeGreaterThan(30);
    expect([...documented.keys()].sort()).toEqual([...new Set(readByCode)].sort());
  });

  test('defaults taken from @relu-lstm/jobs are the ones documented', () => {
    const limitsRow = documented.get(limitVars[0])!;
    expect(limitsRow).toBe(
      Object.values(DEFAULT_LIMITS)
        .map((v) => `\`${v}\``)
        .join(', '),
    );
    expect(documented.get('JOB_ATTEMPTS_TRAIN')).toBe(
      `\`${DEFAULT_JOB_POLICY.attempts.train}\`, \`${DEFAULT_JOB_POLICY.attempts.infer}\``,
    );
    expect(documented.get('JOB_BACKOFF_MS')).toBe(`\`${DEFAULT_JOB_POLICY.backoffMs}\``);
    expect(documented.get('JOB_KEEP_COMPLETED_SEC')).toMatch(
      new RegExp(`^\`${DEFAULT_JOB_POLICY.keepCompletedSec}\`.*\`${DEFAULT_JOB_POLICY.keepCompletedCount}\`$`),
    );
    expect(documented.get('JOB_KEEP_FAILED_SEC')).toMatch(
      new RegExp(`^\`${DEFAULT_JOB_POLICY.keepFailedSec}\`.*\`${DEFAULT_JOB_POLICY.keepFailedCount}\`$`),
    );
  });

  test('every default of apps/api/src/config.ts is the documented one', () => {
    expectDocumentedDefaults(doc, API_VARIABLES);
  });

  test('every route of apps/api/src/routes.ts is documented', () => {
    // A route is named as `METHOD /path` (the headings); a GET may instead appear in an example
    // (`$API/v1/jobs/$ID/artifacts/...`) or a sentence (`/docs/openapi.json`).
    for (const r of ROUTES) {
      const inExample = r.path.replace(/:id/g, '$ID').replace(/\/:name$/, '/');
      const mentioned =
        doc.includes(`${r.method} ${r.path}`) ||
        (r.method === 'GET' && (doc.includes(`$API${inExample}`) || doc.includes(` ${r.path})`)));
      expect({ route: `${r.method} ${r.path}`, mentioned }).toEqual({
        route: `${r.method} ${r.path}`,
        mentioned: true,
      });
    }
  });

  test('every error code of the api and of a failed job is listed', () => {
    for (const code of [...API_ERROR_CODES, ...ERROR_CODES]) expect(doc).toContain(`\`${code}\``);
  });
});

describe('docs/worker.md', () => {
  const doc = read('docs/worker.md');
  const documented = documentedVariables(doc);

  test('the configuration table lists exactly the variables apps/worker/src/config.ts reads', () => {
    const vars = workerVariables();
    expect(vars.length).toBeGreaterThan(20);
    expect([...documented.keys()].sort()).toEqual([...vars].sort());
  });

  test('the Tests section names every test file of apps/worker/test', () => {
    const tests = doc.slice(doc.indexOf('\n## Tests'));
    const files = readdirSync(join(ROOT, 'apps/worker/test')).filter((f) => f.endsWith('.test.ts'));
    expect(files.length).toBeGreaterThan(5);
    expect(files.filter((f) => !tests.includes(`- \`${f.replace(/\.test\.ts$/, '')}\``))).toEqual([]);
  });

  test('every default of apps/worker/src/config.ts is the documented one', () => {
    expectDocumentedDefaults(doc, WORKER_VARIABLES);
  });
});
