/**
 * Turns zod issues into the `issues` of a 400 body: one entry per bad field, with its path as a
 * string (`training.epochs`, `data.inline.x[3][0]`), what was expected and what was received.
 */
import { z } from 'zod';

export interface ValidationIssue {
  /** Path of the field in the body; `''` for the body itself. */
  path: string;
  /** zod's issue code (`invalid_type`, `too_small`, `unrecognized_keys`, `custom`, ...). */
  code: string;
  message: string;
  expected?: string;
  received?: string;
}

export const ValidationIssueSchema = z.strictObject({
  path: z.string(),
  code: z.string(),
  message: z.string(),
  expected: z.string().optional(),
  received: z.string().optional(),
});

/** Most issues listed in one response; a last entry says how many more there were. */
export const MAX_LISTED_ISSUES = 50;

export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out ? `.${String(p)}` : String(p);
  }
  return out;
}

/** Short description of a received value: its type, or the value itself when short. */
export function describeValue(v: unknown): string {
  if (v === undefined) return 'undefined';
  if (v === null) return 'null';
  if (Array.isArray(v)) return `an array of length ${v.length}`;
  if (typeof v === 'string') return v.length > 40 ? `a string of length ${v.length}` : JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (typeof v === 'object') return 'an object';
  return typeof v;
}

type AnyIssue = z.core.$ZodIssue & { input?: unknown; params?: Record<string, unknown> };

function one(issue: AnyIssue, prefix: ReadonlyArray<PropertyKey> = []): ValidationIssue[] {
  const path = [...prefix, ...issue.path];
  const base = { path: formatPath(path), code: issue.code, message: issue.message };
  const received = 'input' in issue ? describeValue(issue.input) : undefined;
  switch (issue.code) {
    case 'invalid_type':
      return [
        { ...base, expected: issue.expected, received: issue.input === undefined ? 'undefined (missing)' : received },
      ];
    case 'too_small':
      return [
        {
          ...base,
          expected: `${issue.origin === 'array' ? 'length ' : ''}${issue.inclusive === false ? '>' : '>='} ${String(issue.minimum)}`,
          received,
        },
      ];
    case 'too_big':
      return [
        {
          ...base,
          expected: `${issue.origin === 'array' ? 'length ' : ''}${issue.inclusive === false ? '<' : '<='} ${String(issue.maximum)}`,
          received,
        },
      ];
    case 'invalid_value':
      return [{ ...base, expected: `one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`, received }];
    case 'invalid_format':
      return [
        {
          ...base,
          expected:
            issue.format === 'regex' && 'pattern' in issue
              ? `a string matching ${String(issue.pattern)}`
              : `a ${issue.format}`,
          received,
        },
      ];
    case 'not_multiple_of':
      return [{ ...base, expected: `a multiple of ${String(issue.divisor)}`, received }];
    case 'unrecognized_keys':
      return issue.keys.map((k) => ({
        path: formatPath([...path, k]),
        code: issue.code,
        message: `Unknown field "${k}"`,
        expected: 'no such field',
        received: 'an unknown field',
      }));
    case 'invalid_key': {
      const inner = issue.issues.length ? one(issue.issues[0] as AnyIssue)[0] : undefined;
      return [
        {
          ...base,
          message: `Invalid key${inner ? `: ${inner.message}` : ''}`,
          expected: inner?.expected ?? 'a valid key',
          received,
        },
      ];
    }
    case 'invalid_union': {
      // Report the branch that got furthest (most path segments) when there is one.
      const branches = issue.errors.filter((b) => b.length > 0);
      if (branches.length) {
        const best = branches.reduce((a, b) =>
          Math.max(...b.map((i) => i.path.length)) > Math.max(...a.map((i) => i.path.length)) ? b : a,
        );
        if (Math.max(...best.map((i) => i.path.length)) > 0) return best.flatMap((i) => one(i as AnyIssue, path));
      }
      return [{ ...base, expected: 'one of the allowed forms', received }];
    }
    case 'custom': {
      const p = issue.params ?? {};
      return [
        {
          ...base,
          expected: typeof p.expected === 'string' ? p.expected : undefined,
          received: typeof p.received === 'string' ? p.received : received,
        },
      ];
    }
    default:
      return [{ ...base, received }];
  }
}

/** Flat, capped list of issues for an error body. Parse with `{ reportInput: true }` to get `received`. */
export function formatIssues(issues: ReadonlyArray<z.core.$ZodIssue>, max = MAX_LISTED_ISSUES): ValidationIssue[] {
  const all = issues.flatMap((i) => one(i as AnyIssue));
  if (all.length <= max) return all;
  return [
    ...all.slice(0, max),
    { path: '', code: 'too_many_issues', message: `${all.length - max} more issues not listed` },
  ];
}

export type ParseResult<T> = { ok: true; value: T } | { ok: false; issues: ValidationIssue[] };

/**
 * `schema.safeParse` with the input reported and the issues formatted. zod walks nested values
 * recursively, so a value nested deeper than the call stack allows (tens of thousands of arrays
 * inside each other, which JSON.parse and a queue accept) throws a RangeError out of safeParse; that
 * is bad input like any other, reported as one issue on the whole value instead of thrown.
 */
export function validate<S extends z.ZodType>(schema: S, value: unknown): ParseResult<z.output<S>> {
  let r: z.ZodSafeParseResult<z.output<S>>;
  try {
    r = schema.safeParse(value, { reportInput: true });
  } catch (e) {
    if (!(e instanceof RangeError)) throw e;
    return {
      ok: false,
      issues: [
        {
          path: '',
          code: 'too_deep',
          message: 'the value is nested too deeply to validate',
          expected: 'nesting no deeper than the schema',
          received: 'nesting deeper than the call stack',
        },
      ],
    };
  }
  return r.success ? { ok: true, value: r.data } : { ok: false, issues: formatIssues(r.error.issues) };
}
