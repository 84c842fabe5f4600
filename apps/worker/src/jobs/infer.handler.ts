/**
 * Infer jobs: one forward pass in the engine (the same process that trains, so the device has one
 * owner and a loaded model is cached there). Short and bounded by the payload limits; a cancel
 * that arrives while it runs is not acted on (it is checked before the job starts).
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
    let outcome;
    try {
      outcome = await this.engine.run({ kind: 'infer', runId, jobId: ctx.jobId, payload: ctx.payload }, () => undefined);
    } catch (e) {
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
