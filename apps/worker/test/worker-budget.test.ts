/**
 * Hostile but valid jobs against real worker processes (issue 10, worker side): a job over the
 * memory budget is refused before it starts; one the worker cannot size and that outgrows the
 * budget is killed by the RSS watchdog; both fail once as `resource_exhausted` and the worker serves
 * the next job. Outputs too many for the result go to `outputs.safetensors`. A cancel during a long
 * batch kills the engine and the job ends `cancelled` in one attempt.
 */
import { readFileSync } from 'node:fs';
import { decodeSafetensors } from '@relu-lstm/lstm';
import { Job } from 'bullmq';
import {
  INFER_INLINE_OUTPUTS_MAX,
  INFER_OUTPUTS_ARTIFACT,
  contract,
  type InferResult,
  type StateEvent,
} from '@relu-lstm/jobs';
import { brief, Harness, tinyInlineInfer, type WorkerProcess } from './harness';

jest.setTimeout(240_000);

let h: Harness;

beforeAll(() => {
  h = new Harness();
});

afterAll(async () => {
  await h?.close();
});

/** The job's state events, its BullMQ attempts and what it ended with. */
async function ending(id: string, worker: WorkerProcess, timeoutMs: number) {
  const events = await h.waitForEnd(id, timeoutMs, worker);
  const states = events.filter((e): e is StateEvent => e.type === 'state');
  const job = await Job.fromId(h.queue('any'), id);
  return {
    events,
    states,
    last: states[states.length - 1],
    attempts: job!.attemptsMade,
    trace: events.map(brief).join(' '),
  };
}

function peakRss(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

describe('memory budget (LIMIT_MAX_JOB_MEMORY_MB 400)', () => {
  let worker: WorkerProcess;
  beforeAll(async () => {
    worker = await h.startReadyWorker({ LIMIT_MAX_JOB_MEMORY_MB: '400', ENGINE_MEMORY_POLL_MS: '50' });
  });
  afterAll(async () => {
    worker.proc.kill('SIGTERM');
    await worker.exited;
  });

  it('refuses a model over the budget before it starts (resource_exhausted, 1 attempt), then serves the next job', async () => {
    const payload = contract.TrainPayload.parse({
      model: { inputSize: 1, hiddenSize: 4096, numLayers: 16, outputSize: 1 },
      data: { synthetic: { kind: 'sine', samples: 32, seqLen: 10 } },
      training: { epochs: 1, batchSize: 32 },
    });
    const started = Date.now();
    const id = await h.submit('train', payload);
    const r = await ending(id, worker, 30_000);
    console.log(
      `over-budget model refused after ${Date.now() - started} ms, ${r.attempts} attempt(s): ${r.last.error?.message}`,
    );
    expect(r.last.state).toBe('failed');
    expect(r.last.error?.code).toBe('resource_exhausted');
    expect(r.last.error?.message).toMatch(/LIMIT_MAX_JOB_MEMORY_MB/);
    expect(r.attempts).toBe(1);

    const next = await h.submit('infer', tinyInlineInfer(4));
    expect((await ending(next, worker, 60_000)).last.state).toBe('completed');
  });

  it('kills an engine that outgrows the budget (an infer on a trained model it cannot size): resource_exhausted once, next job served', async () => {
    const trained = await h.submit(
      'train',
      contract.TrainPayload.parse({
        model: { inputSize: 1, hiddenSize: 16, outputSize: 1 },
        data: { synthetic: { kind: 'sine', samples: 32, seqLen: 10 } },
        training: { epochs: 1, batchSize: 32 },
      }),
    );
    expect((await ending(trained, worker, 60_000)).last.state).toBe('completed');
    const inputs = Array.from({ length: 24 }, () => Array.from({ length: 20_000 }, (_, t) => [Math.sin(t / 7)]));
    const started = Date.now();
    const id = await h.submit('infer', contract.InferPayload.parse({ modelJobId: trained, inputs }));
    const r = await ending(id, worker, 120_000);
    console.log(
      `watchdog: infer 24x20000 ended ${r.last.state} after ${Date.now() - started} ms, ${r.attempts} attempt(s): ${r.last.error?.message}`,
    );
    expect(r.last.error?.code).toBe('resource_exhausted');
    expect(r.last.error?.details).toMatchObject({ limitMb: 400 });
    expect(r.attempts).toBe(1);
    expect(r.states.filter((s) => s.state === 'running')).toHaveLength(1);

    const next = await h.submit('infer', tinyInlineInfer(4));
    expect((await ending(next, worker, 60_000)).last.state).toBe('completed');
  });
});

describe('large results and cancel (default budget)', () => {
  let worker: WorkerProcess;
  beforeAll(async () => {
    worker = await h.startReadyWorker({ CANCEL_KILL_MS: '500' });
  });
  afterAll(async () => {
    worker.proc.kill('SIGTERM');
    await worker.exited;
  });

  it('puts outputs past INFER_INLINE_OUTPUTS_MAX in outputs.safetensors; the result carries hN, cN and a link', async () => {
    const [hidden, out, b, t] = [8, 64, 24, 1000];
    expect(b * t * out).toBeGreaterThan(INFER_INLINE_OUTPUTS_MAX);
    const inputs = Array.from({ length: b }, (_, i) => Array.from({ length: t }, (_, k) => [Math.sin((k + i) / 9)]));
    const payload = contract.InferPayload.parse({ ...tinyInlineInfer(hidden, out), inputs });
    const id = await h.submit('infer', payload);
    const r = await ending(id, worker, 120_000);
    expect(r.last.state).toBe('completed');
    expect(r.attempts).toBe(1);
    const result = r.last.result as InferResult;
    expect(result.outputs).toBeUndefined();
    expect(result.outputsArtifact).toEqual({
      name: INFER_OUTPUTS_ARTIFACT,
      shape: [b, t, out],
      url: `/v1/jobs/${id}/artifacts/${INFER_OUTPUTS_ARTIFACT}`,
    });
    expect(result.hN).toHaveLength(1);
    expect(result.hN[0]).toHaveLength(b);
    const file = decodeSafetensors(new Uint8Array(await h.artifacts.get(id, INFER_OUTPUTS_ARTIFACT)));
    expect(file.tensors.outputs.shape).toEqual([b, t, out]);
    expect(file.tensors.outputs.data).toHaveLength(b * t * out);
    expect(Array.from(file.tensors.outputs.data as Float32Array).every(Number.isFinite)).toBe(true);
  });

  /** Submits `payload`, cancels it `afterMs` after it started running; returns how it ended and how long after the flag. */
  async function cancelWhileRunning(type: 'train' | 'infer', payload: unknown, afterMs: number) {
    const id = await h.submit(type, payload as never);
    await h.waitForEvent(id, (e) => e.type === 'state' && e.state === 'running', 60_000, worker);
    await new Promise((r) => setTimeout(r, afterMs));
    const asked = Date.now();
    await h.redis.set(h.keys.cancel(id), JSON.stringify({ requestedAt: asked }));
    const r = await ending(id, worker, 30_000);
    return { ...r, took: Date.now() - asked };
  }

  it('a cancel while the engine generates its data (event loop busy) kills it: cancelled in 1 attempt', async () => {
    // 20000 sine sequences of 500 steps: seconds of synchronous generation before the first batch.
    const payload = contract.TrainPayload.parse({
      model: { inputSize: 1, hiddenSize: 8, outputSize: 1 },
      data: { synthetic: { kind: 'sine', samples: 20_000, seqLen: 500 } },
      training: { epochs: 1, batchSize: 32 },
    });
    const r = await cancelWhileRunning('train', payload, 500);
    console.log(
      `cancel during data load: ${r.last.state} ${r.took} ms after the flag, ${r.attempts} attempt(s): ${r.last.error?.message}`,
    );
    expect(r.last.state).toBe('cancelled');
    expect(r.attempts).toBe(1);
    expect(r.took).toBeLessThan(5_000);
    expect(r.events.some((e) => e.type === 'metric')).toBe(false);
  });

  it('a cancel of a running inference kills its engine at once: cancelled in 1 attempt', async () => {
    const payload = contract.InferPayload.parse({
      ...tinyInlineInfer(16),
      inputs: Array.from({ length: 24 }, () => Array.from({ length: 20_000 }, (_, t) => [Math.sin(t / 7)])),
    });
    const r = await cancelWhileRunning('infer', payload, 1000);
    console.log(`cancel of an inference: ${r.last.state} ${r.took} ms after the flag, ${r.attempts} attempt(s)`);
    expect(r.last.state).toBe('cancelled');
    expect(r.attempts).toBe(1);
    expect(r.took).toBeLessThan(5_000);
  });

  it('a cancel during a long batch kills the engine: cancelled in 1 attempt within the bound, next job served', async () => {
    // One batch of 64 sequences of 1500 steps: several seconds between batch boundaries.
    const payload = contract.TrainPayload.parse({
      model: { inputSize: 1, hiddenSize: 64, outputSize: 1 },
      data: { synthetic: { kind: 'sine', samples: 64, seqLen: 1500 } },
      training: { epochs: 100, batchSize: 64 },
    });
    const r = await cancelWhileRunning('train', payload, 1500);
    const took = r.took;
    console.log(
      `cancel during a long batch: ${r.last.state} ${took} ms after the flag, ${r.attempts} attempt(s): ${r.last.error?.message}; ${r.trace}`,
    );
    expect(r.last.state).toBe('cancelled');
    expect(r.attempts).toBe(1);
    // Poll (200 ms) + CANCEL_KILL_MS (500 ms) + the kill and the records.
    expect(took).toBeLessThan(5_000);

    const next = await h.submit('infer', tinyInlineInfer(4));
    const n = await ending(next, worker, 60_000);
    expect(n.last.state).toBe('completed');
    expect((n.last.result as InferResult).hN).toBeDefined();
    console.log(`worker peak RSS (VmHWM) after these jobs: ${peakRss(worker.proc.pid!).toFixed(0)} MB`);
  });
});
