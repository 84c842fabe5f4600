/**
 * Command line of `relu-lstm`, parsed with node:util `parseArgs`. Pure: no I/O, so tests can call it.
 */
import { parseArgs } from 'node:util';
import { JOB_PRIORITY, JOB_STATES, JOB_TYPES, type JobState, type JobType } from '@relu-lstm/jobs';

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
      --name NAME           the job's name (find it with list --name)
      --tag KEY=VALUE       a tag (repeat for several; find them with list --tag)
      --priority P          1 (highest) to 10 (lowest) among your jobs; default 5
  status <id>               the job's state, progress, result summary or error
  watch <id>                follow a job already submitted (as submit --watch)
  list [--state S] [--type T] [--name NAME] [--tag KEY=VALUE]... [--since DATE] [--limit N]
                            jobs, newest first, those matching every filter given
                            (--since: an ISO 8601 date or milliseconds since the epoch)
  cancel <id>               cancel a job (a running one stops at its next batch)
  artifacts <id> [-o DIR]   list the job's artifacts, or download them all into DIR
  workers                   live workers: backend, device, host, queues, current job
  models list [--limit N]   registered models, newest first
  models show <ref>         a model (<name>) or one version (<name>@<version> | <name>@<alias>)
  models register <name> <job-id> [--description D] [--tag k=v]...
                            a completed train job's model becomes the next version of <name>
  models alias <name> <alias> <version>
                            point the alias (e.g. production) at a version
  models unalias <name> <alias>
  models delete <name>@<version>
                            delete a version (refused while an alias points at it)
  models download <ref> [-o DIR]
                            save a version's files (model.safetensors: PyTorch) into DIR;
                            npm run export-model turns model.safetensors into TF.js/Keras files
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
  | {
      name: 'submit';
      spec: string;
      as: JobType | null;
      watch: boolean;
      wait: boolean;
      idempotencyKey: string | null;
      job: { name?: string; tags?: Record<string, string>; priority?: number };
    }
  | { name: 'status'; id: string }
  | { name: 'watch'; id: string }
  | { name: 'list'; state: JobState | null; limit: number | null; filters: ListFilters }
  | { name: 'cancel'; id: string }
  | { name: 'artifacts'; id: string; out: string | null }
  | { name: 'workers' }
  | { name: 'models'; sub: ModelCommand }
  | { name: 'sweep'; spec: string; watch: boolean }
  | { name: 'sweep-status'; id: string }
  | { name: 'sweep-cancel'; id: string }
  | { name: 'session'; modelJobId: string; inputs: string };

/** `relu-lstm models <sub> ...`. */
export type ModelCommand =
  | { sub: 'list'; limit: number | null }
  | { sub: 'show'; ref: string }
  | { sub: 'register'; name: string; jobId: string; description: string | null; tags: Record<string, string> }
  | { sub: 'alias'; name: string; alias: string; version: number }
  | { sub: 'unalias'; name: string; alias: string }
  | { sub: 'delete'; name: string; version: number }
  | { sub: 'download'; ref: string; out: string | null };

/** The search filters of `list` (each optional; every one given must match). */
export interface ListFilters {
  type?: JobType;
  name?: string;
  tags?: Record<string, string>;
  /** Milliseconds since the epoch. */
  since?: number;
}

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
  name: { type: 'string' },
  tag: { type: 'string', multiple: true },
  priority: { type: 'string' },
  type: { type: 'string' },
  since: { type: 'string' },
  description: { type: 'string' },
} as const;

type OptionName = keyof typeof OPTIONS;
const GLOBAL: OptionName[] = ['url', 'api-key', 'json', 'help'];
/** Options each command takes besides the global ones, and how many positionals. */
const COMMANDS: Record<Exclude<Command['name'], 'help'>, { options: OptionName[]; args: string[] }> = {
  submit: {
    options: ['watch', 'wait', ...JOB_TYPES, 'idempotency-key', 'name', 'tag', 'priority'],
    args: ['spec.json'],
  },
  status: { options: [], args: ['id'] },
  watch: { options: [], args: ['id'] },
  list: { options: ['state', 'limit', 'type', 'name', 'tag', 'since'], args: [] },
  cancel: { options: [], args: ['id'] },
  artifacts: { options: ['out'], args: ['id'] },
  workers: { options: [], args: [] },
  // The subcommand and its arguments are checked by `parseModels` (MODEL_COMMANDS).
  models: { options: ['limit', 'out', 'description', 'tag'], args: [] },
  sweep: { options: ['watch'], args: ['sweep.json'] },
  'sweep-status': { options: [], args: ['id'] },
  'sweep-cancel': { options: [], args: ['id'] },
  session: { options: [], args: ['modelJobId', 'inputs.json'] },
};

const MODEL_COMMANDS: Record<ModelCommand['sub'], { options: OptionName[]; args: string[] }> = {
  list: { options: ['limit'], args: [] },
  show: { options: [], args: ['ref'] },
  register: { options: ['description', 'tag'], args: ['name', 'job-id'] },
  alias: { options: [], args: ['name', 'alias', 'version'] },
  unalias: { options: [], args: ['name', 'alias'] },
  delete: { options: [], args: ['name@version'] },
  download: { options: ['out'], args: ['ref'] },
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
  if (name === 'models') return { ...common, command: { name, sub: parseModels(args, v) } };
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
          job: {
            ...(v.name !== undefined && { name: v.name }),
            ...(v.tag !== undefined && { tags: parseTags(v.tag) }),
            ...(v.priority !== undefined && { priority: parsePriority(v.priority) }),
          },
        },
      };
    }
    case 'list': {
      if (v.state !== undefined && !(JOB_STATES as readonly string[]).includes(v.state)) {
        throw new UsageError(`--state: expected one of ${JOB_STATES.join(', ')}, got ${JSON.stringify(v.state)}`);
      }
      const state = (v.state as JobState | undefined) ?? null;
      return { ...common, command: { name, state, limit: parseLimit(v.limit), filters: listFilters(v) } };
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

/** `--tag key=value` (or `key:value`), repeatable, into a record; the api checks keys and values. */
function parseTags(list: readonly string[] | undefined): Record<string, string> {
  const tags: Record<string, string> = {};
  for (const t of list ?? []) {
    const m = /^([^=:]+)[=:](.+)$/.exec(t);
    if (!m) throw new UsageError(`--tag: expected key=value, got ${JSON.stringify(t)}`);
    tags[m[1]] = m[2];
  }
  return tags;
}

function parsePriority(p: string): number {
  const n = Number(p);
  if (!/^\d+$/.test(p) || n < JOB_PRIORITY.highest || n > JOB_PRIORITY.lowest)
    throw new UsageError(
      `--priority: expected an integer from ${JOB_PRIORITY.highest} (highest) to ${JOB_PRIORITY.lowest} (lowest), got ${JSON.stringify(p)}`,
    );
  return n;
}

function listFilters(v: { type?: string; name?: string; tag?: string[]; since?: string }): ListFilters {
  if (v.type !== undefined && !(JOB_TYPES as readonly string[]).includes(v.type))
    throw new UsageError(`--type: expected one of ${JOB_TYPES.join(', ')}, got ${JSON.stringify(v.type)}`);
  let since: number | undefined;
  if (v.since !== undefined) {
    since = /^\d+$/.test(v.since) ? Number(v.since) : Date.parse(v.since);
    if (Number.isNaN(since))
      throw new UsageError(`--since: expected an ISO 8601 date or milliseconds, got ${JSON.stringify(v.since)}`);
  }
  return {
    ...(v.type !== undefined && { type: v.type as JobType }),
    ...(v.name !== undefined && { name: v.name }),
    ...(v.tag !== undefined && { tags: parseTags(v.tag) }),
    ...(since !== undefined && { since }),
  };
}

function parseLimit(limit: string | undefined): number | null {
  if (limit === undefined) return null;
  if (!/^\d+$/.test(limit) || Number(limit) < 1)
    throw new UsageError(`--limit: expected a positive integer, got ${JSON.stringify(limit)}`);
  return Number(limit);
}

function parseVersionArg(what: string, v: string): number {
  if (!/^[1-9]\d{0,8}$/.test(v)) throw new UsageError(`${what}: expected a version number, got ${JSON.stringify(v)}`);
  return Number(v);
}

/** `models <sub> <args...>` with the options parsed already. */
function parseModels(
  positionals: string[],
  v: { limit?: string; out?: string; description?: string; tag?: string[] },
): ModelCommand {
  const [sub, ...args] = positionals;
  const subs = Object.keys(MODEL_COMMANDS);
  if (!sub || !(sub in MODEL_COMMANDS))
    throw new UsageError(`'models' takes a subcommand: ${subs.join(', ')}; got ${JSON.stringify(sub ?? '')}`);
  const spec = MODEL_COMMANDS[sub as ModelCommand['sub']];
  for (const key of Object.keys(v) as OptionName[]) {
    if (!GLOBAL.includes(key) && !spec.options.includes(key) && v[key as keyof typeof v] !== undefined)
      throw new UsageError(`--${key} is not an option of 'models ${sub}'`);
  }
  if (args.length !== spec.args.length)
    throw new UsageError(`'models ${sub}' takes ${spec.args.map((a) => `<${a}>`).join(' ') || 'no arguments'}`);
  switch (sub as ModelCommand['sub']) {
    case 'list':
      return { sub: 'list', limit: parseLimit(v.limit) };
    case 'show':
      return { sub: 'show', ref: args[0] };
    case 'register':
      return {
        sub: 'register',
        name: args[0],
        jobId: args[1],
        description: v.description ?? null,
        tags: parseTags(v.tag),
      };
    case 'alias':
      return { sub: 'alias', name: args[0], alias: args[1], version: parseVersionArg('<version>', args[2]) };
    case 'unalias':
      return { sub: 'unalias', name: args[0], alias: args[1] };
    case 'delete': {
      const m = /^([^@]+)@(.+)$/.exec(args[0]);
      if (!m) throw new UsageError(`'models delete' takes <name>@<version>, got ${JSON.stringify(args[0])}`);
      return { sub: 'delete', name: m[1], version: parseVersionArg('<name>@<version>', m[2]) };
    }
    case 'download':
      return { sub: 'download', ref: args[0], out: v.out ?? null };
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
