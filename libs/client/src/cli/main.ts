/**
 * `relu-lstm`: the commands over `RunnerClient`. `runCli` takes its I/O as arguments and returns the
 * exit status, so tests run it in-process against a test server.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import {
  unknownJobType,
  type InferPayloadInput,
  type InferResult,
  type JobView,
  type ModelVersionView,
  type SweepRequestInput,
  type SweepView,
  type TrainPayloadInput,
  type TrainResult,
} from '@relu-lstm/jobs';
import { JobFailedError, PayloadValidationError, RunnerApiError, RunnerConnectionError } from '../errors';
import { RunnerClient, type FetchLike } from '../runner-client';
import {
  parseCliArgs,
  specToSubmission,
  UsageError,
  USAGE,
  type CliArgs,
  type Command,
  type ModelCommand,
} from './args';
import { duration, num, planFromPayload, ProgressPrinter, type Output, type ProgressPlan } from './progress';

export interface CliIo {
  stdout: Output;
  stderr: Output;
  env: Record<string, string | undefined>;
  /** Reads the spec when it is `-`. */
  stdin?: () => Promise<string>;
  fetch?: FetchLike;
  cwd?: string;
}

export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  let args: CliArgs;
  try {
    args = parseCliArgs(argv, io.env);
  } catch (e) {
    if (e instanceof UsageError) {
      io.stderr.write(`relu-lstm: ${e.message}\nTry 'relu-lstm --help'.\n`);
      return 2;
    }
    throw e;
  }
  if (args.command.name === 'help') {
    io.stdout.write(USAGE);
    return 0;
  }
  const client = new RunnerClient({ baseUrl: args.url, apiKey: args.apiKey ?? undefined, fetch: io.fetch });
  try {
    return await dispatch(args, client, io);
  } catch (e) {
    io.stderr.write(`relu-lstm: ${describe(e)}\n`);
    return e instanceof UsageError ? 2 : 1;
  }
}

/** What every command writes with: the client, the I/O, and whether to print JSON. */
interface Session {
  client: RunnerClient;
  io: CliIo;
  json: boolean;
  /** Writes one line to stdout. */
  out(s: string): void;
  printJson(v: unknown): void;
}

type CommandOf<N extends Command['name']> = Extract<Command, { name: N }>;

/** A fresh one per watch: the printer fills in `stepsPerEpoch` as it learns it. */
const noPlan = (): ProgressPlan => ({ epochs: null, stepsPerEpoch: null });

async function dispatch(args: CliArgs, client: RunnerClient, io: CliIo): Promise<number> {
  const { command: c, json } = args;
  const out = (s: string) => io.stdout.write(s.endsWith('\n') ? s : `${s}\n`);
  const s: Session = { client, io, json, out, printJson: (v) => out(JSON.stringify(v, null, 2)) };
  switch (c.name) {
    case 'help':
      out(USAGE);
      return 0;
    case 'submit':
      return submit(s, c);
    case 'watch':
      return watch(client, c.id, noPlan(), io, json);
    case 'status': {
      const view = await client.get(c.id);
      if (json) s.printJson(view);
      else out(statusText(view));
      return 0;
    }
    case 'list':
      return list(s, c);
    case 'cancel': {
      const r = await client.cancel(c.id);
      if (json) s.printJson(r);
      else out(`${r.id} ${r.state}${r.cancelRequested && r.state === 'running' ? ' (stops at its next batch)' : ''}`);
      return 0;
    }
    case 'artifacts':
      return artifacts(s, c);
    case 'workers':
      return workers(s);
    case 'models':
      return models(s, c.sub);
    case 'sweep':
      return sweep(s, c);
    case 'session':
      return session(s, c);
    case 'sweep-status': {
      const view = await client.getSweep(c.id);
      if (json) s.printJson(view);
      else out(sweepText(view));
      return 0;
    }
    case 'sweep-cancel': {
      const r = await client.cancelSweep(c.id);
      if (json) s.printJson(r);
      else out(`${r.id} ${r.state}${r.state === 'cancelled' ? '' : ' (running trials stop at their next batch)'}`);
      return 0;
    }
  }
}

async function models(s: Session, c: ModelCommand): Promise<number> {
  const { client } = s;
  switch (c.sub) {
    case 'list': {
      const page = await client.listModels({ limit: c.limit ?? undefined });
      if (s.json) return (s.printJson(page), 0);
      for (const m of page.items) {
        const aliases = Object.entries(m.aliases).map(([a, v]) => `${a}=${v}`);
        s.out(
          `${m.name}  latest ${m.latestVersion}  ${m.versionCount} versions${aliases.length ? `  ${aliases.join(' ')}` : ''}`,
        );
      }
      if (page.nextCursor) s.out(`(more: --json shows the cursor)`);
      return 0;
    }
    case 'show': {
      const v = c.ref.includes('@') ? await client.resolveModelVersion(c.ref) : await client.getModel(c.ref);
      if (s.json) return (s.printJson(v), 0);
      const versions = 'versions' in v ? v.versions : [v];
      for (const x of versions) s.out(versionLine(x));
      return 0;
    }
    case 'register': {
      const v = await client.registerModel({
        name: c.name,
        fromJob: c.jobId,
        ...(c.description !== null ? { description: c.description } : {}),
        ...(Object.keys(c.tags).length ? { tags: c.tags } : {}),
      });
      return s.json ? (s.printJson(v), 0) : (s.out(`${v.ref} registered from job ${v.jobId}`), 0);
    }
    case 'alias': {
      const r = await client.setModelAlias(c.name, c.alias, c.version);
      return s.json ? (s.printJson(r), 0) : (s.out(`${r.name}@${r.alias} -> ${r.version}`), 0);
    }
    case 'unalias':
      await client.deleteModelAlias(c.name, c.alias);
      return (s.out(`${c.name}@${c.alias} removed`), 0);
    case 'delete':
      await client.deleteModelVersion(c.name, c.version);
      return (s.out(`${c.name}@${c.version} deleted`), 0);
    case 'download': {
      const v = await client.resolveModelVersion(c.ref);
      const dir = resolve(s.io.cwd ?? process.cwd(), c.out ?? `${v.name}-${v.version}`);
      const saved = await client.saveModelVersion(v.name, v.version, dir);
      if (s.json) s.printJson(saved);
      else for (const f of saved) s.out(`${f.path} (${f.bytes} bytes)`);
      return 0;
    }
  }
}

function versionLine(v: ModelVersionView): string {
  const loss = v.metrics?.finalLoss;
  return `${v.ref}  job ${v.jobId}  ${new Date(v.createdAt).toISOString()}${v.aliases.length ? `  aliases ${v.aliases.join(',')}` : ''}${loss != null ? `  loss ${num(loss)}` : ''}${v.description ? `  ${v.description}` : ''}`;
}

async function sweep(s: Session, c: CommandOf<'sweep'>): Promise<number> {
  const spec = (await readSpec(c.spec, s.io)) as SweepRequestInput;
  const sub = await s.client.submitSweep(spec);
  if (!c.watch)
    return s.json ? (s.printJson(sub), 0) : (s.out(`${sub.id} ${sub.state} (${sub.trialIds.length} trials)`), 0);
  if (!s.json) s.io.stderr.write(`started sweep ${sub.id} of ${sub.trialIds.length} trials\n`);
  let ended = 0;
  const view = await s.client.waitForSweep(sub.id, {
    onView: (v) => {
      const n = v.trials.filter(
        (t) => t.state === 'completed' || t.state === 'failed' || t.state === 'cancelled',
      ).length;
      if (!s.json && n !== ended) s.io.stderr.write(`${n}/${v.trials.length} trials ended\n`);
      ended = n;
    },
  });
  if (s.json) s.printJson(view);
  else s.out(sweepText(view));
  return view.state === 'completed' ? 0 : 1;
}

/** Streams `inputs` through a new session one time step per call, then closes it. */
async function session(s: Session, c: CommandOf<'session'>): Promise<number> {
  const inputs = (await readSpec(c.inputs, s.io)) as number[][][];
  if (!Array.isArray(inputs) || !Array.isArray(inputs[0])) throw new UsageError('the inputs must be [B][T][features]');
  const opened = await s.client.openSession({ modelJobId: c.modelJobId });
  try {
    let last = null;
    for (let t = 0; t < inputs[0].length; t++) {
      last = await s.client.step(
        opened.id,
        t,
        inputs.map((row) => [row[t]]),
      );
      if (s.json) s.out(JSON.stringify({ seq: t, outputs: last.outputs }));
      else s.out(`step ${t}: ${JSON.stringify(last.outputs)}`);
    }
    if (last)
      s.out(
        s.json
          ? JSON.stringify({ hN: last.hN, cN: last.cN })
          : `hN ${JSON.stringify(last.hN)}\ncN ${JSON.stringify(last.cN)}`,
      );
    return 0;
  } finally {
    await s.client.closeSession(opened.id).catch(() => undefined);
  }
}

/** The ranked table: rank, metric, state, trial id and the values it tried. */
export function sweepText(v: SweepView): string {
  const lines = [`${v.id}  sweep  ${v.state}  metric ${v.metric}, at most ${v.maxConcurrent} at once`];
  lines.push(`  ${'rank'.padEnd(4)}  ${v.metric.padEnd(10)}  ${'state'.padEnd(9)}  ${'trial'.padEnd(36)}  params`);
  for (const t of v.trials) {
    const params = Object.entries(t.params)
      .map(([k, x]) => `${k}=${JSON.stringify(x)}`)
      .join(' ');
    lines.push(
      `  ${String(t.rank ?? '-').padEnd(4)}  ${(t.metric === null ? '-' : num(t.metric)).padEnd(10)}  ${t.state.padEnd(9)}  ${t.id.padEnd(36)}  ${params}`,
    );
  }
  return lines.join('\n');
}

async function submit(s: Session, c: CommandOf<'submit'>): Promise<number> {
  const { type, payload } = specToSubmission(await readSpec(c.spec, s.io), c.as);
  if (type === 'train') return submitTrain(s, c, payload as TrainPayloadInput);
  if (type !== 'infer') return unknownJobType(type);
  return submitInfer(s, c, payload as InferPayloadInput);
}

async function submitTrain(s: Session, c: CommandOf<'submit'>, payload: TrainPayloadInput): Promise<number> {
  const sub = await s.client.submitTrain(payload, { idempotencyKey: c.idempotencyKey ?? undefined, ...c.job });
  if (!c.watch) return s.json ? (s.printJson(sub), 0) : (s.out(`${sub.id} ${sub.state}`), 0);
  if (!s.json) s.io.stderr.write(`submitted train job ${sub.id}\n`);
  return watch(s.client, sub.id, planFromPayload(payload), s.io, s.json);
}

/** With `--wait` the api may answer with the finished job; then there is nothing to watch. */
async function submitInfer(s: Session, c: CommandOf<'submit'>, payload: InferPayloadInput): Promise<number> {
  const sub = await s.client.submitInfer(payload, {
    idempotencyKey: c.idempotencyKey ?? undefined,
    wait: c.wait,
    ...c.job,
  });
  if ('result' in sub && (sub.state === 'completed' || sub.state === 'failed' || sub.state === 'cancelled')) {
    if (s.json) s.printJson(sub);
    else if (sub.state === 'completed' && sub.result) s.out(`${sub.id} completed: ${inferSummary(sub.result)}`);
    else s.io.stderr.write(`${sub.id} ${sub.state}${sub.error ? `: ${sub.error.code}: ${sub.error.message}` : ''}\n`);
    return sub.state === 'completed' ? 0 : 1;
  }
  if (!c.watch) return s.json ? (s.printJson(sub), 0) : (s.out(`${sub.id} ${sub.state}`), 0);
  if (!s.json) s.io.stderr.write(`submitted infer job ${sub.id}\n`);
  return watch(s.client, sub.id, noPlan(), s.io, s.json);
}

async function list(s: Session, c: CommandOf<'list'>): Promise<number> {
  const page = await s.client.list({ state: c.state ?? undefined, limit: c.limit ?? undefined, ...c.filters });
  if (s.json) {
    s.printJson(page);
    return 0;
  }
  for (const j of page.items)
    s.out(
      `${j.id}  ${j.type.padEnd(5)}  ${j.state.padEnd(9)}  ${j.device.padEnd(3)}  ${new Date(j.createdAt).toISOString()}${labelsOf(j)}`,
    );
  if (page.nextCursor) s.out(`(more: --json shows the cursor)`);
  return 0;
}

/** `  name  k=v,k=v` of a listed job, or nothing. */
function labelsOf(j: { name?: string; tags?: Record<string, string> }): string {
  const tags = Object.entries(j.tags ?? {}).map(([k, v]) => `${k}=${v}`);
  return [j.name, tags.join(',')]
    .filter(Boolean)
    .map((x) => `  ${x}`)
    .join('');
}

/** Lists the job's artifacts, or with `--out` saves them all into that directory. */
async function artifacts(s: Session, c: CommandOf<'artifacts'>): Promise<number> {
  if (c.out === null) {
    const list = await s.client.listArtifacts(c.id);
    if (s.json) s.printJson(list);
    else
      for (const a of list.items)
        s.out(`${a.name.padEnd(28)} ${String(a.size).padStart(12)}  ${new Date(a.modifiedAt).toISOString()}`);
    return 0;
  }
  const dir = resolve(s.io.cwd ?? process.cwd(), c.out);
  const saved = await s.client.saveArtifacts(c.id, dir);
  if (s.json) s.printJson(saved);
  else for (const f of saved) s.out(`${f.path} (${f.bytes} bytes)`);
  return 0;
}

async function workers(s: Session): Promise<number> {
  const workers = await s.client.workers();
  if (s.json) s.printJson(workers);
  else if (workers.length === 0) s.out('no live workers');
  else
    for (const w of workers) {
      s.out(
        `${w.id}  ${w.backend}${w.gpu ? '+gpu' : ''}  ${w.device}  ${w.host}:${w.pid}  queues ${w.queues.join(',')}  ${w.currentJobId ? `running ${w.currentJobId}` : 'idle'}`,
      );
    }
  return 0;
}

/** Follows the job's events to its end; 0 when it completed, 1 otherwise. With `json`, one event per line. */
async function watch(client: RunnerClient, id: string, plan: ProgressPlan, io: CliIo, json: boolean): Promise<number> {
  const printer = new ProgressPrinter(io.stdout, plan);
  try {
    for await (const { id: eventId, event } of client.events(id)) {
      if (json) {
        io.stdout.write(`${JSON.stringify({ id: eventId, ...event })}\n`);
        if (event.type === 'state' && event.state === 'completed') return 0;
        if (event.type === 'state' && (event.state === 'failed' || event.state === 'cancelled')) return 1;
        continue;
      }
      if (event.type === 'state' && event.state === 'completed') {
        printer.finish();
        io.stdout.write(`completed: ${resultSummary(event.result)}\n`);
        return 0;
      }
      if (event.type === 'state' && (event.state === 'failed' || event.state === 'cancelled')) {
        printer.finish();
        io.stderr.write(
          `job ${id} ${event.state}${event.error ? `: ${event.error.code}: ${event.error.message}` : ''}\n`,
        );
        return 1;
      }
      printer.event(event);
    }
    return 1; // not reached: the stream ends with a terminal state or throws
  } finally {
    printer.finish();
  }
}

async function readSpec(spec: string, io: CliIo): Promise<unknown> {
  let text: string;
  if (spec === '-') {
    if (!io.stdin) throw new UsageError('no standard input to read the spec from');
    text = await io.stdin();
  } else {
    try {
      text = await readFile(resolve(io.cwd ?? process.cwd(), spec), 'utf8');
    } catch (e) {
      throw new UsageError(`cannot read ${spec}: ${(e as Error).message}`);
    }
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new UsageError(`${spec} is not JSON: ${(e as Error).message}`);
  }
}

function isTrainResult(r: unknown): r is TrainResult {
  return typeof r === 'object' && r !== null && 'epochs' in r && 'artifacts' in r;
}

function inferSummary(r: InferResult): string {
  const shape = (a: unknown[]): string => {
    const dims: number[] = [];
    for (let x: unknown = a; Array.isArray(x); x = x[0]) dims.push(x.length);
    return `[${dims.join(', ')}]`;
  };
  const outputs = r.outputs
    ? shape(r.outputs)
    : `${JSON.stringify(r.outputsArtifact?.shape)} in ${r.outputsArtifact?.url}`;
  return `outputs ${outputs}, hN ${shape(r.hN)}, cN ${shape(r.cN)} on ${r.backend}${r.gpu ? '+gpu' : ''} in ${duration(r.elapsedMs)}`;
}

function resultSummary(r: unknown): string {
  if (isTrainResult(r)) {
    return `${r.epochs} epochs, ${r.steps} steps, final loss ${num(r.finalLoss)}${r.finalValLoss !== null ? `, val ${num(r.finalValLoss)}` : ''} on ${r.backend}${r.gpu ? '+gpu' : ''} in ${duration(r.elapsedMs)}; artifacts: ${r.artifacts.join(', ')}`;
  }
  if (r && typeof r === 'object' && 'outputs' in r) return inferSummary(r as InferResult);
  return 'done';
}

function statusText(v: JobView): string {
  const lines = [
    `${v.id}  ${v.type}  ${v.state}${v.cancelRequested && v.state === 'running' ? ' (cancel requested)' : ''}`,
  ];
  lines.push(
    `  queue ${v.queue}, attempts ${v.attempts}/${v.maxAttempts}, created ${new Date(v.createdAt).toISOString()}`,
  );
  if (v.progress) {
    const p = v.progress;
    lines.push(
      `  last: epoch ${p.epoch + 1} step ${p.step} loss ${num(p.loss)}${p.valLoss !== null ? ` val ${num(p.valLoss)}` : ''}`,
    );
  }
  if (v.state === 'completed' && v.result) lines.push(`  result: ${resultSummary(v.result)}`);
  if (v.error) lines.push(`  error: ${v.error.code}: ${v.error.message}`);
  return lines.join('\n');
}

function describe(e: unknown): string {
  if (e instanceof PayloadValidationError) return `${e.message}`;
  if (e instanceof RunnerApiError) {
    const issues = e.issues.map((i) => `\n  ${i.path || '(body)'}: ${i.message}`).join('');
    return `${e.request ? `${e.request}: ` : ''}${e.status} ${e.code}: ${e.detail}${issues}`;
  }
  if (e instanceof RunnerConnectionError || e instanceof JobFailedError || e instanceof UsageError) return e.message;
  return e instanceof Error ? e.message : String(e);
}
