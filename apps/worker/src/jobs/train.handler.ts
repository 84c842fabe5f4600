/**
 * Train jobs, parent side: resume from the job's checkpoint when there is one, run the training in
 * the engine, forward its progress to `job.updateProgress` and the job's event stream, write its
 * checkpoints and, at the end, the four artifacts; turn a stop into `cancelled` (cancel), a
 * release of the job back to the queue (shutdown), `timeout` (its wall-clock limit, checkpoint
 * kept) or nothing at all (`lost`: another worker holds the lock now). Checkpoints and artifacts
 * are written only while this attempt holds the job's lock (fencing.ts, publish.ts).
 */
import * as os from 'node:os';
import { randomBytes } from 'node:crypto';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { WaitingError } from 'bullmq';
import { ARTIFACTS, DIVERGENCE_ROLLBACK, FencedWriteError, TrainResultSchema, type ArtifactStore, type ProgressEvent, type TrainResult } from '@relu-lstm/jobs';
import { WORKER_CONFIG, type WorkerConfig } from '../config';
import { EngineClient } from '../engine/engine-client';
import type { RunMessage, TerminalMessage } from '../engine/protocol';
import { CheckpointStore } from './checkpoints';
import { LostLockError } from './fencing';
import { engineRunFailure } from './job-budget';
import { jobFailure } from './job-errors';
import { JobEvents } from './job-events';
import type { JobContext, JobHandler } from './job-handler';
import { LOSS_DIVERGED, lossBlowup } from './loss-check';
import { metricsCsv } from './metrics-csv';
import { ArtifactPublisher } from './publish';

@Injectable()
export class TrainHandler implements JobHandler<'train'> {
  readonly type = 'train' as const;
  private readonly log = new Logger('TrainHandler');

  constructor(
    @Inject(WORKER_CONFIG) private readonly config: WorkerConfig,
    private readonly publisher: ArtifactPublisher,
    private readonly engine: EngineClient,
    private readonly checkpoints: CheckpointStore,
    private readonly events: JobEvents,
  ) {}

  async run(ctx: JobContext<'train'>): Promise<TrainResult> {
    const { job, jobId, payload, attempt } = ctx;
    const found = await this.checkpoints.find(jobId);
    let metrics: ProgressEvent[] = found?.metrics ?? [];
    const hint = found?.pointer?.step;
    const before = hint === undefined ? metrics : metrics.filter((p) => p.step <= hint);
    const elapsedBeforeMs = before.length ? before[before.length - 1].elapsedMs : 0;

    const runId = `${jobId}:${attempt}:${randomBytes(4).toString('hex')}`;
    let resumedFromEpoch: number | null = null;
    // Side effects of the run's messages happen one after the other, in the order they came.
    let chain: Promise<void> = Promise.resolve();
    const then = (what: string, fn: () => Promise<unknown>) => {
      // A worker that lost the lock (paused past it) drops what its engine still sends.
      chain = chain.then(async () => ((await ctx.lock.held()) ? fn() : undefined)).then(
        () => undefined,
        (e) => this.log.warn(`job ${jobId}: ${what} failed: ${(e as Error).message}`),
      );
    };

    const onMessage = (m: RunMessage) => {
      switch (m.kind) {
        case 'started':
          if (m.resumedFrom) {
            const from = m.resumedFrom;
            resumedFromEpoch = from.epoch;
            metrics = metrics.filter((p) => p.step <= from.step);
            then('resumed event', () =>
              this.events.info(jobId, 'resumed', `resumed from the checkpoint at step ${from.step}: continuing with epoch ${from.epoch}${from.stepInEpoch ? ` at its batch ${from.stepInEpoch}` : ''} (attempt ${attempt})`, { ...from, attempt }),
            );
          } else {
            metrics = [];
          }
          break;
        case 'progress': {
          const point = m.point;
          metrics.push(point);
          then('progress', () => Promise.all([job.updateProgress(point), this.events.append(jobId, { type: 'metric', at: Date.now(), ...point })]));
          break;
        }
        case 'checkpoint': {
          const upTo = metrics.filter((p) => p.step <= m.step);
          then('checkpoint', async () => {
            try {
              await this.checkpoints.save(jobId, m.bytes, upTo, { epoch: m.epoch, step: m.step, attempt }, ctx);
            } catch (e) {
              if (e instanceof FencedWriteError) ctx.stop.request('lost');
              throw e;
            }
            await this.events.info(jobId, 'checkpoint', `checkpoint at step ${m.step}: a resume continues with epoch ${m.epoch}${m.stepInEpoch ? ` at its batch ${m.stepInEpoch}` : ''}`, { epoch: m.epoch, step: m.step, stepInEpoch: m.stepInEpoch });
          });
          break;
        }
        case 'rollback': {
          // Divergence guard: the points past the state rolled back to are replaced by the retry's.
          const r = m.rollback;
          metrics = metrics.filter((p) => p.step <= r.to.step);
          then('rollback event', () =>
            this.events.info(jobId, DIVERGENCE_ROLLBACK, `training diverged at epoch ${r.epoch}, step ${r.step} (${r.quantity} ${r.value}): rolled back to step ${r.to.step} (${r.to.source}) with learning rate ${r.learningRate} (rollback ${r.retry} of ${r.retries})`, { ...r }, 'warning'),
          );
          break;
        }
        case 'log':
          then('log event', () => this.events.info(jobId, m.code ?? 'engine', m.message, m.data, m.level));
          break;
      }
    };

    ctx.stop.onStop((reason) => {
      this.engine.stop(runId, reason === 'shutdown' || reason === 'timeout');
      // A run that does not reach a batch boundary in time (one huge batch, a hung backend) is killed.
      if (reason === 'timeout' || reason === 'lost') setTimeout(() => this.engine.killRun(runId), this.config.shutdownGraceMs).unref();
      // A cancel is immediate: a run still building its model, loading data or in a long batch is killed.
      if (reason === 'cancel') setTimeout(() => this.engine.killRun(runId), this.config.cancelKillMs).unref();
    });
    let outcome: TerminalMessage;
    try {
      outcome = await this.engine.run(
        { kind: 'train', runId, jobId, payload, progressEvery: Math.max(payload.training.progressEvery, this.config.progressEvery), resumeFrom: found?.artifact ?? null, elapsedBeforeMs, divergence: this.config.divergence },
        onMessage,
      );
    } catch (e) {
      // The engine died (or was killed after the shutdown grace): the last periodic checkpoint stays.
      await chain;
      if (ctx.stop.reason === 'shutdown') return this.release(ctx, `released: the worker is shutting down (${(e as Error).message})`, {});
      if (ctx.stop.reason === 'cancel') throw await this.cancelled(ctx, `cancelled; the engine did not stop within ${this.config.cancelKillMs} ms (CANCEL_KILL_MS) and was killed`, {});
      if (ctx.stop.reason === 'timeout') throw this.timedOut(ctx, `the engine did not stop within ${this.config.shutdownGraceMs} ms and was killed`, {});
      if (ctx.stop.reason === 'lost') throw new LostLockError(jobId, 'the run was stopped');
      throw jobFailure(engineRunFailure(e));
    }
    await chain;

    switch (outcome.kind) {
      case 'trained': {
        const { summary, files } = outcome;
        const backend = this.engine.backend!;
        const config = {
          jobId,
          type: 'train',
          model: payload.model,
          payload,
          resolved: files.resolved,
          backend,
          worker: { id: this.config.workerId, host: os.hostname(), pid: process.pid },
          attempt,
          writtenAt: new Date().toISOString(),
        };
        const result = TrainResultSchema.parse({
          epochs: summary.epochs,
          steps: summary.steps,
          finalLoss: summary.finalLoss,
          finalValLoss: summary.finalValLoss,
          samplesPerSec: summary.samplesPerSec,
          elapsedMs: Math.round(summary.elapsedMs),
          resumedFromEpoch,
          backend: backend.backend,
          gpu: backend.gpu,
          artifacts: [ARTIFACTS.model, ARTIFACTS.state, ARTIFACTS.metrics, ARTIFACTS.config],
          diverged: await this.flagBlowup(jobId, metrics, summary.finalLoss),
        });
        // Written once per job, by the holder of its lock (publish.ts); the checkpoint goes with it.
        const artifactFiles = [
          [ARTIFACTS.model, files.model],
          [ARTIFACTS.state, files.state],
          [ARTIFACTS.metrics, metricsCsv(metrics)],
          [ARTIFACTS.config, JSON.stringify(config, null, 2)],
        ] as const;
        return this.publisher.publish(ctx, artifactFiles, result, (u) => TrainResultSchema.parse(u));
      }
      case 'stopped':
        if (ctx.stop.reason === 'shutdown') {
          // The engine sent a checkpoint of the step it stopped at just before this message.
          const at = { epoch: outcome.epoch, step: outcome.step };
          return this.release(ctx, `released at epoch ${at.epoch}, step ${at.step}: the worker is shutting down`, at);
        }
        if (ctx.stop.reason === 'timeout') throw this.timedOut(ctx, `stopped at epoch ${outcome.epoch}, step ${outcome.step}`, { epoch: outcome.epoch, step: outcome.step });
        if (ctx.stop.reason === 'lost') throw new LostLockError(jobId, `the run was stopped at step ${outcome.step}`);
        throw await this.cancelled(ctx, `cancelled at epoch ${outcome.epoch}, step ${outcome.step}`, { epoch: outcome.epoch, step: outcome.step });
      case 'failed':
        throw jobFailure(outcome.error);
      default:
        throw jobFailure({ code: 'internal', message: `unexpected engine reply '${outcome.kind}' to a train request` });
    }
  }

  /**
   * Puts the job back in its queue without using up an attempt (BullMQ `moveToWait` + `WaitingError`),
   * so that another worker, or this one restarted, resumes it from its checkpoint at once instead of
   * waiting for the lock to lapse.
   */
  private async release(ctx: JobContext<'train'>, message: string, data: Record<string, unknown>): Promise<never> {
    await ctx.job.moveToWait(ctx.token);
    await this.events.info(ctx.jobId, 'released', message, data);
    throw new WaitingError();
  }

  /** Whether the completed run's loss blew up (loss-check.ts); if so, says it in a warning event. */
  private async flagBlowup(jobId: string, metrics: ProgressEvent[], finalLoss: number | null): Promise<boolean> {
    const blowup = lossBlowup(metrics, finalLoss, this.config.divergedLossFactor);
    if (blowup) await this.events.info(jobId, LOSS_DIVERGED, blowup.message, { ...blowup }, 'warning');
    return blowup !== null;
  }

  /** A cancelled job is not retried: its checkpoint goes, and it fails with reason `cancelled`. */
  private async cancelled(ctx: JobContext<'train'>, message: string, details: Record<string, unknown>): Promise<Error> {
    await this.checkpoints.remove(ctx.jobId).catch(() => undefined);
    return jobFailure({ code: 'cancelled', message, details });
  }

  /** Over its wall-clock limit: fails for good (`timeout`), keeping the checkpoint of where it stopped. */
  private timedOut(ctx: JobContext<'train'>, how: string, details: Record<string, unknown>): Error {
    return jobFailure({ code: 'timeout', message: `ran longer than its limit of ${ctx.timeoutMs} ms (JOB_TIMEOUT_TRAIN_MS): ${how}; its checkpoint is kept`, details: { ...details, limitMs: ctx.timeoutMs } });
  }
}
