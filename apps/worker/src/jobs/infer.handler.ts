/**
 * Infer jobs: one forward pass in the engine (the same process that trains, so the device has one
 * owner and a loaded model is cached there). One forward pass cannot stop half-way, so a cancel or
 * its wall-clock limit (JOB_TIMEOUT_INFER_MS) kills the engine (a new one is forked for the next
 * job) and the job ends `cancelled` or `timeout`. Outputs too many for the result are published as
 * the job's `outputs.safetensors` artifact (result-spill.ts), fenced like a training's artifacts.
 */
import { randomBytes } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { InferResultSchema, type InferResult } from '@relu-lstm/jobs';
import { EngineClient } from '../engine/engine-client';
import { engineRunFailure } from './job-budget';
import { jobFailure } from './job-errors';
import type { JobContext, JobHandler } from './job-handler';
import { ArtifactPublisher } from './publish';
import { spilledLink } from './result-link';

@Injectable()
export class InferHandler implements JobHandler<'infer'> {
  readonly type = 'infer' as const;

  constructor(
    private readonly engine: EngineClient,
    private readonly publisher: ArtifactPublisher,
  ) {}

  async run(ctx: JobContext<'infer'>): Promise<InferResult> {
    const started = performance.now();
    const runId = `${ctx.jobId}:${ctx.attempt}:${randomBytes(4).toString('hex')}`;
    ctx.stop.onStop((reason) => {
      if (reason === 'timeout' || reason === 'cancel') this.engine.killRun(runId);
    });
    let outcome;
    try {
      outcome = await this.engine.run(
        { kind: 'infer', runId, jobId: ctx.jobId, payload: ctx.payload, modelSource: ctx.modelSource },
        () => undefined,
      );
    } catch (e) {
      if (ctx.stop.reason === 'timeout') {
        throw jobFailure({
          code: 'timeout',
          message: `ran longer than its limit of ${ctx.timeoutMs} ms (JOB_TIMEOUT_INFER_MS); the engine was stopped`,
          details: { limitMs: ctx.timeoutMs },
        });
      }
      if (ctx.stop.reason === 'cancel')
        throw jobFailure({ code: 'cancelled', message: 'cancelled while running; the engine was stopped' });
      throw jobFailure(engineRunFailure(e));
    }
    if (outcome.kind === 'failed') throw jobFailure(outcome.error);
    if (outcome.kind !== 'inferred')
      throw jobFailure({ code: 'internal', message: `unexpected engine reply '${outcome.kind}' to an infer request` });
    const backend = this.engine.backend!;
    const { outputs, hN, cN } = outcome.result;
    const result = InferResultSchema.parse({
      ...('inline' in outputs
        ? { outputs: outputs.inline }
        : { outputsArtifact: spilledLink(ctx.jobId, outputs.spilled) }),
      hN,
      cN,
      backend: backend.backend,
      gpu: backend.gpu,
      elapsedMs: Math.round(performance.now() - started),
    });
    if ('inline' in outputs) return result;
    return this.publisher.publish(ctx, [[outputs.spilled.name, outputs.spilled.bytes]], result, (u) =>
      InferResultSchema.parse(u),
    );
  }
}
