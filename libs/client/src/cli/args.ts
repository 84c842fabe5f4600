/**
 * Command line of `relu-lstm`, parsed with node:util `parseArgs`. Pure: no I/O, so tests can call it.
 */
import { parseArgs } from 'node:util';
import { JOB_STATES, JOB_TYPES, type JobState, type JobType } from '@relu-lstm/jobs';

export const DEFAULT_URL = 'http://127.0.0.1:3000';
export const URL_ENV = 'RELU_LSTM_URL';
export const API_KEY_ENV = 'RELU_LSTM_API_KEY';

export const USAGE = `Usage: relu-lstm <command> [options]

Commands:
  submit <spec.json|->      submit a train or infer job (the type: --train/--infer, else the spec's
                            "type" field, else its shape: "training" -> train, "inputs" -> infer)
      -w, --watch           follow the job: a progress bar on a terminal, one line per event
                            otherwise; exits 1 if the job fails or is cancelled
      --wait                infer only: the server answers when the job has ended
      --idempotency-key K   a repeat with the same key returns the same job
  status <id>               the job's state, progress, result summary or error
  watch <id>                follow a job already submitted (as submit --watch)
  list [--state S] [--limit N]
                            jobs, newest first
  cancel <id>               cancel a job (a running one stops at its next batch)
  artifacts <id> [-o DIR]   list the job's artifacts, or download them all into DIR
  workers                   live workers: backend, device, host, queues, current job
  sweep <sweep.json|->      start a sweep ({ base, search, maxConcurrent, metric?, earlyStop? });
      -w, --watch           poll it to its end, then print the ranked trials
  sweep-status <id>         a sweep's state and its trials, ranked best first
  sweep-cancel <id>         cancel a sweep's queued and running trials
  session <modelJobId> <inputs.json|->
                            stream a sequence through a new session one time step per call
                            (inputs [B][T][features]); prints each step's outputs and the final
                            state, then closes the session

Options:
  --url URL                 the api (default $${URL_ENV} or ${DEFAULT_URL})
  --api-key KEY             sent as a bearer token (default $${API_KEY_ENV})
  --json                    print JSON instead of text
  -h, --help                this help

Exit status: 0 success, 1 failure (job failed or cancelled, api or connection error), 2 usage error.
`;

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export type Command =
  | { name: 'help' }
  | { name: 'submit'; spec: string; as: JobType | null; watch: boolean; wait: boolean; idempotencyKey: string | null }
  | { name: 'status'; id: string }
  | { name: 'watch'; id: string }
  | { name: 'list'; state: JobState | null; limit: number | null }
  | { name: 'cancel'; id: string }
  | { name: 'artifacts'; id: string; out: string | null }
  | { name: 'workers' }
  | { name: 'sweep'; spec: string; watch: boolean }
  | { name: 'sweep-status'; id: string }
  | { name: 'sweep-cancel'; id: string }
  | { name: 'session'; modelJobId: string; inputs: string };

export interface CliArgs {
  command: Command;
  url: string;
  apiKey: string | null;
  json: boolean;
}

const OPTIONS = {
  url: { type: 'string' },
  'api-key': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  watch: { type: 'boolean', short: 'w' },
  wait: { type: 'boolean' },
  train: { type: 'boolean' },
  infer: { type: 'boolean' },
  'idempotency-key': { type: 'string' },
  out: { type: 'string', short: 'o' },
  state: { type: 'string' },
  limit: { type: 'string' },
} as const;

type OptionName = keyof typeof OPTIONS;
const GLOBAL: OptionName[] = ['url', 'api-key', 'json', 'help'];
/** Options each command takes besides the global ones, and how many positionals. */
const COMMANDS: Record<Exclude<Command['name'], 'help'>, { options: OptionName[]; args: string[] }> = {
  submit: { options: ['watch', 'wait', ...JOB_TYPES, 'idempotency-key'], args: ['spec.json'] },
  status: { options: [], args: ['id'] },
  watch: { options: [], args: ['id'] },
  list: { options: ['state', 'limit'], args: [] },
  cancel: { options: [], args: ['id'] },
  artifacts: { options: ['out'], args: ['id'] },
  workers: { options: [], args: [] },
  sweep: { options: ['watch'], args: ['sweep.json'] },
  'sweep-status': { options: [], args: ['id'] },
  'sweep-cancel': { options: [], args: ['id'] },
  session: { options: [], args: ['modelJobId', 'inputs.json'] },
};

export function parseCliArgs(argv: readonly string[], env: Record<string, string | undefined> = {}): CliArgs {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message.replace(/\. To specify a positional argument.*$/s, ''));
  }
  const { values: v, positionals } = parsed;
  const url = v.url ?? (env[URL_ENV] || DEFAULT_URL);
  try {
    const u = new URL(url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error();
  } catch {
    throw new UsageError(`--url: expected an http(s) URL, got ${JSON.stringify(url)}`);
  }
  const common = { url, apiKey: v['api-key'] ?? (env[API_KEY_ENV] || null), json: v.json ?? false };
  const [name, ...args] = positionals;
  if (v.help || name === undefined || name === 'help') return { ...common, command: { name: 'help' } };
  if (!(name in COMMANDS))
    throw new UsageError(`unknown command ${JSON.stringify(name)}; commands: ${Object.keys(COMMANDS).join(', ')}`);
  const spec = COMMANDS[name as keyof typeof COMMANDS];
  for (const key of Object.keys(v) as OptionName[]) {
    if (!GLOBAL.includes(key) && !spec.options.includes(key))
      throw new UsageError(`--${key} is not an option of '${name}'`);
  }
  if (args.length !== spec.args.length) {
    const want = spec.args.length ? spec.args.map((a) => `<${a}>`).join(' ') : 'no arguments';
    throw new UsageError(
      `'${name}' takes ${want}, got ${args.length ? args.map((a) => JSON.stringify(a)).join(' ') : 'none'}`,
    );
  }
  const id = args[0];
  switch (name) {
    case 'submit': {
      // Each job type is a flag of its own (--train, --infer).
      const flagged = JOB_TYPES.filter((t) => v[t]);
      if (flagged.length > 1) throw new UsageError(`${flagged.map((t) => `--${t}`).join(' and ')} exclude each other`);
      const as: JobType | null = flagged[0] ?? null;
      if (v.wait && as === 'train') throw new UsageError('--wait is for infer jobs');
      return {
        ...common,
        command: {
          name,
          spec: id,
          as,
          watch: v.watch ?? false,
          wait: v.wait ?? false,
          idempotencyKey: v['idempotency-key'] ?? null,
        },
      };
    }
    case 'list': {
      if (v.state !== undefined && !(JOB_STATES as readonly string[]).includes(v.state)) {
        throw new UsageError(`--state: expected one of ${JOB_STATES.join(', ')}, got ${JSON.stringify(v.state)}`);
      }
      let limit: number | null = null;
      if (v.limit !== undefined) {
        limit = Number(v.limit);
        if (!/^\d+$/.test(v.limit) || limit < 1)
          throw new UsageError(`--limit: expected a positive integer, got ${JSON.stringify(v.limit)}`);
      }
      return { ...common, command: { name, state: (v.state as JobState | undefined) ?? null, limit } };
    }
    case 'artifacts':
      return { ...common, command: { name, id, out: v.out ?? null } };
    case 'workers':
      return { ...common, command: { name } };
    case 'sweep':
      return { ...common, command: { name, spec: id, watch: v.watch ?? false } };
    case 'session':
      return { ...common, command: { name, modelJobId: id, inputs: args[1] } };
    default:
      return {
        ...common,
        command: { name: name as 'status' | 'watch' | 'cancel' | 'sweep-status' | 'sweep-cancel', id },
      };
  }
}

/** The top-level field that tells a spec's job type when neither a flag nor `"type"` does. */
const SPEC_SHAPES = { train: 'training', infer: 'inputs' } satisfies Record<JobType, string>;

/**
 * The job type and payload of a spec file. The type comes from `forced` (--train/--infer), else a
 * top-level `"type": "train" | "infer"` (removed from the payload), else the shape: a `training`
 * object means train, an `inputs` array means infer.
 */
export function specToSubmission(
  spec: unknown,
  forced: JobType | null,
): { type: JobType; payload: Record<string, unknown> } {
  if (spec === null || typeof spec !== 'object' || Array.isArray(spec))
    throw new UsageError('the spec must be a JSON object');
  const { type, ...rest } = spec as Record<string, unknown>;
  const names = JOB_TYPES.map((t) => JSON.stringify(t));
  if (type !== undefined && !JOB_TYPES.some((t) => t === type)) {
    throw new UsageError(`the spec's "type" must be ${names.join(' or ')}, got ${JSON.stringify(type)}`);
  }
  if (forced && type !== undefined && forced !== type)
    throw new UsageError(`--${forced} contradicts the spec's "type": ${JSON.stringify(type)}`);
  const byShape = JOB_TYPES.find((t) => SPEC_SHAPES[t] in rest) ?? null;
  const chosen = forced ?? (type as JobType | undefined) ?? byShape;
  if (!chosen) {
    const flags = JOB_TYPES.map((t) => `--${t}`).join(' or ');
    throw new UsageError(`cannot tell the job type: pass ${flags}, or add "type": ${names.join(' | ')} to the spec`);
  }
  return { type: chosen, payload: rest };
}
