/**
 * Sweeps: POST /v1/sweeps expands the search into trial specs, checks every one exactly as a train
 * submission is checked (schema, references, memory estimate) and queues nothing unless all pass;
 * then the trials (ordinary train jobs, each with its own records, events and artifacts, each
 * counted against the tenant's job quota) go on the queues as the children of one BullMQ flow
 * (libs/jobs sweep-producer.ts). GET ranks the trials from their own records; DELETE cancels the
 * sweep's queued and running trials like DELETE /v1/jobs/:id does one job.
 */
import { randomUUID } from 'node:crypto';
import { InjectFlowProducer, InjectQueue } from '@nestjs/bullmq';
import { Inject, Injectable } from '@nestjs/common';
import type { FlowProducer, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import {
  DEFAULT_STREAM_MAXLEN,
  REPORT_TRIAL_SCRIPT,
  MAX_SWEEP_TRIALS,
  SAFE_ID,
  SWEEP_QUEUE,
  SweepRecordSchema,
  SweepRequestSchema,
  SweepSizeError,
  expandTrials,
  isTerminal,
  planJob,
  produceSweep,
  rankTrials,
  validate,
  type JobContract,
  type TrialEvent,
  type PlannedJob,
  type RedisKeys,
  type SweepRecord,
  type SweepState,
  type SweepSubmitResponse,
  type SweepView,
  type TrialOutcome,
  type ValidationIssue,
} from '@relu-lstm/jobs';
import type { ApiConfig } from '../config';
import { ApiError } from '../http/errors';
import { CONFIG, CONTRACT, KEYS, REDIS } from '../infra/tokens';
import { DatasetCatalog } from '../datasets/catalog';
import { JobRecords } from '../jobs/job-records';
import { JobsService } from '../jobs/jobs.service';
import { JobQuota } from '../jobs/quota';

@Injectable()
export class SweepsService {
  constructor(
    @Inject(CONFIG) private readonly config: ApiConfig,
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(KEYS) private readonly keys: RedisKeys,
    @Inject(CONTRACT) private readonly contract: JobContract,
    @InjectFlowProducer(SWEEP_QUEUE) private readonly flow: FlowProducer,
    @InjectQueue(SWEEP_QUEUE) private readonly parents: Queue,
    private readonly jobs: JobsService,
    private readonly records: JobRecords,
    private readonly quota: JobQuota,
    private readonly datasets: DatasetCatalog,
  ) {}

  async create(body: unknown, tenant: string): Promise<SweepSubmitResponse> {
    const req = validate(SweepRequestSchema, body);
    if (!req.ok) throw ApiError.invalid(req.issues);
    const trials = await this.planTrials(req.value, tenant);
    const record: SweepRecord = {
      id: randomUUID(),
      tenant,
      createdAt: Date.now(),
      maxConcurrent: req.value.maxConcurrent,
      metric: req.value.metric,
      ...(req.value.earlyStop ? { earlyStop: req.value.earlyStop } : {}),
      trials: trials.map((t) => ({ id: t.plan.id, params: t.params })),
    };
    const deps = { redis: this.redis, keys: this.keys, flow: this.flow };
    const keepSec = this.config.jobPolicy.keepFailedSec;
    const plans = trials.map((t) => t.plan);
    const referenced = await this.referenceDatasets(plans);
    try {
      await this.quota.admit(tenant, (quota) => produceSweep(deps, { record, trials: plans, keepSec }, quota));
    } catch (e) {
      await Promise.all(referenced.map(([d, j]) => this.datasets.unreference(d, j).catch(() => undefined)));
      throw e;
    }
    return { id: record.id, state: 'queued', trialIds: plans.map((p) => p.id) };
  }

  /** Each trial naming an uploaded dataset holds it (DELETE /v1/datasets/:id waits), as a train submission does. */
  private async referenceDatasets(plans: ReadonlyArray<PlannedJob<'train'>>): Promise<Array<[string, string]>> {
    const done: Array<[string, string]> = [];
    for (const p of plans) {
      const datasetId = p.data.payload.data.datasetId;
      if (!datasetId) continue;
      if (!(await this.datasets.reference(datasetId, p.id))) {
        await Promise.all(done.map(([d, j]) => this.datasets.unreference(d, j).catch(() => undefined)));
        throw ApiError.invalid([
          {
            path: 'base.data.datasetId',
            code: 'not_found',
            message: `dataset ${datasetId} is gone`,
            expected: 'an uploaded dataset',
            received: JSON.stringify(datasetId),
          },
        ]);
      }
      done.push([datasetId, p.id]);
    }
    return done;
  }

  /** Every trial's spec, checked like a train submission; any issue refuses the whole sweep (400). */
  private async planTrials(
    req: { base: Record<string, unknown>; search: Parameters<typeof expandTrials>[0]['search'] },
    tenant: string,
  ): Promise<Array<{ params: Record<string, unknown>; plan: PlannedJob<'train'> }>> {
    let expanded;
    try {
      expanded = expandTrials(req);
    } catch (e) {
      if (!(e instanceof SweepSizeError)) throw e;
      throw ApiError.invalid([
        {
          path: 'search',
          code: 'too_big',
          message: e.message,
          expected: `at most ${MAX_SWEEP_TRIALS} trials`,
          received: String(e.trials),
        },
      ]);
    }
    const checked = await Promise.all(expanded.map((t) => this.jobs.checkPayload('train', t.spec, tenant)));
    const issues: ValidationIssue[] = checked.flatMap((c, i) =>
      c.ok
        ? []
        : c.issues.map((issue) => ({
            ...issue,
            path: `trials[${i}].${issue.path}`,
            message: `trial ${i} (${JSON.stringify(expanded[i].params)}): ${issue.message}`,
          })),
    );
    if (issues.length) throw ApiError.invalid(issues.slice(0, 50), 'a trial of the sweep is invalid; see issues');
    const policy = this.config.jobPolicy;
    return checked.flatMap((c, i) =>
      c.ok
        ? [
            {
              params: expanded[i].params,
              plan: planJob('train', c.value, {
                limits: this.contract.limits,
                tenant,
                policy,
                modelVersion: c.modelVersion,
              }),
            },
          ]
        : [],
    );
  }

  async get(id: string, tenant: string): Promise<SweepView> {
    const record = await this.recordOr404(id, tenant);
    const trials = await this.trialOutcomes(record);
    return {
      id,
      state: await this.stateOf(record, trials),
      metric: record.metric,
      maxConcurrent: record.maxConcurrent,
      createdAt: record.createdAt,
      trials: rankTrials(trials, record.metric),
    };
  }

  /** Cancels every trial not yet ended (queued ones are removed, running ones stop at the next batch). */
  async cancel(id: string, tenant: string): Promise<SweepSubmitResponse> {
    const record = await this.recordOr404(id, tenant);
    await this.redis.set(this.keys.cancel(id), JSON.stringify({ requestedAt: Date.now() }));
    await Promise.all(record.trials.map((t) => this.cancelTrial(id, t, tenant)));
    const trials = await this.trialOutcomes(record);
    return { id, state: await this.stateOf(record, trials), trialIds: record.trials.map((t) => t.id) };
  }

  /** A trial removed before it started never reaches a worker: its `trial` event is written here. */
  private async cancelTrial(sweepId: string, trial: SweepRecord['trials'][number], tenant: string): Promise<void> {
    try {
      const r = await this.jobs.cancel(trial.id, tenant);
      if (r.status !== 200) return;
      const event: TrialEvent = {
        type: 'trial',
        at: Date.now(),
        trialId: trial.id,
        state: 'cancelled',
        metric: null,
        params: trial.params,
        error: { code: 'cancelled', message: 'cancelled before it started', retryable: false },
      };
      const k = this.keys;
      await this.redis.eval(
        REPORT_TRIAL_SCRIPT,
        2,
        k.sweepReported(sweepId),
        k.events(sweepId),
        trial.id,
        String(DEFAULT_STREAM_MAXLEN),
        JSON.stringify(event),
      );
    } catch (e) {
      if (!(e instanceof ApiError) || (e.status !== 409 && e.status !== 404)) throw e;
    }
  }

  private async recordOr404(id: string, tenant: string): Promise<SweepRecord> {
    const raw = SAFE_ID.test(id) ? await this.redis.get(this.keys.sweep(id)) : null;
    const parsed = raw ? SweepRecordSchema.safeParse(JSON.parse(raw)) : null;
    if (!parsed?.success || parsed.data.tenant !== tenant) throw ApiError.notFound(`sweep ${id}`);
    return parsed.data;
  }

  private async trialOutcomes(record: SweepRecord): Promise<TrialOutcome[]> {
    const views = await this.records.views(
      record.trials.map((t) => t.id),
      record.tenant,
    );
    return record.trials.map((t, i) => {
      const v = views[i];
      if (!v)
        return { ...t, state: 'failed', error: { code: 'not_found', message: 'the trial is gone', retryable: false } };
      return { ...t, state: v.state, result: v.result ?? undefined, ...(v.error ? { error: v.error } : {}) };
    });
  }

  /** From the parent's BullMQ state, the cancel flag and the trials' states. */
  private async stateOf(record: SweepRecord, trials: TrialOutcome[]): Promise<SweepState> {
    const [parent, cancelled] = await Promise.all([
      this.parents.getJobState(record.id),
      this.redis.exists(this.keys.cancel(record.id)),
    ]);
    const allEnded = trials.every((t) => isTerminal(t.state));
    if (cancelled && allEnded) return 'cancelled';
    if (parent === 'completed') return 'completed';
    if (parent === 'failed') return 'failed';
    return trials.some((t) => t.state !== 'queued') ? 'running' : 'queued';
  }
}
