/**
 * Infer jobs: one forward pass in the engine (the same process that trains, so the device has one
 * owner and a loaded model is cached there). Short and bounded by the payload limits; a cancel
 * that arrives while it runs is not acted on (it is checked before the job starts). One forward
 * pass cannot stop half-way, so past its wall-clock limit (JOB_TIMEOUT_INFER_MS) the engine is
 * killed (a new one is forked for the next job) and the job fails with `timeout`.
 */
import { randomBytes } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { InferResultSchema, type InferResult } from '@relu-lstm/jobs';
import { EngineClient } from '../engine/engine-client';
import { jobFailure } from './job-errors';
import type { JobContext, JobHandler } from './job-handler';

@Injectable()
export class InferHandler implements JobHandler<'infer'> {
  readonly type = 'infer' as const;

  constructor(private readonly engine: EngineClient) {}

  async run(ctx: JobContext<'infer'>): Promise<InferResult> {
    const started = performance.now();
    const runId = `${ctx.jobId}:${ctx.attempt}:${randomBytes(4).toString('hex')}`;
    ctx.stop.onStop((reason) => {
      if (reason === 'timeout') this.engine.killRun(runId);
    });
    let outcome;
    try {
      outcome = await this.engine.run({ kind: 'infer', runId, jobId: ctx.jobId, payload: ctx.payload }, () => undefined);
    } catch (e) {
      if (ctx.stop.reason === 'timeout') {
        throw jobFailure({ code: 'timeout', message: `ran longer than its limit of ${ctx.timeoutMs} ms (JOB_TIMEOUT_INFER_MS); the engine was stopped`, details: { limitMs: ctx.timeoutMs } });
      }
      throw jobFailure({ code: 'internal', message: (e as Error).message });
    }
    if (outcome.kind === 'failed') throw jobFailure(outcome.error);
    if (outcome.kind !== 'inferred') throw jobFailure({ code: 'internal', message: `unexpected engine reply '${outcome.kind}' to an infer request` });
    const backend = this.engine.backend!;
    return InferResultSchema.parse({
      ...outcome.result,
      backend: backend.backend,
      gpu: backend.gpu,
      elapsedMs: Math.round(performance.now() - started),
    });
  }
}
