/**
 * The worker's Prometheus metrics (prom-client) on METRICS_PORT when set: what this process and its
 * engine hold and do. Queue-wide numbers (depths, finished jobs, live workers) are the api's
 * (GET /metrics there); these are per worker: which job it runs, the engine's resident set (read
 * from /proc, as the memory watchdog does) and tfjs's tensor count and bytes (the engine reports
 * `tf.memory()` every second while metrics are on). Listens on METRICS_HOST (loopback by default):
 * no key, so expose it only where Prometheus needs it.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { WORKER_CONFIG, type WorkerConfig } from './config';
import { EngineClient } from './engine/engine-client';
import { residentBytes } from './engine/memory-watchdog';
import { QueueConsumer } from './jobs/consumer';

const PREFIX = 'relu_lstm_worker_';

@Injectable()
export class MetricsService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly log = new Logger('Metrics');
  private readonly registry = new Registry();
  private server: Server | null = null;

  constructor(
    @Inject(WORKER_CONFIG) private readonly config: WorkerConfig,
    private readonly consumer: QueueConsumer,
    private readonly engine: EngineClient,
  ) {
    if (config.metrics) this.define();
  }

  private define(): void {
    const registers = [this.registry];
    const { consumer, engine, config } = this;
    collectDefaultMetrics({ register: this.registry, prefix: PREFIX });
    new Gauge({
      name: `${PREFIX}info`,
      help: 'Always 1: this worker, its backend and device',
      labelNames: ['worker_id', 'backend', 'gpu', 'device'] as const,
      registers,
      collect() {
        this.reset();
        const b = consumer.backend;
        this.set(
          {
            worker_id: config.workerId,
            backend: b?.backend ?? 'unknown',
            gpu: String(b?.gpu ?? false),
            device: b?.device ?? 'unknown',
          },
          1,
        );
      },
    });
    new Gauge({
      name: `${PREFIX}current_job`,
      help: 'Always 1, labelled with the id of the job this worker runs now (absent when idle)',
      labelNames: ['job_id'] as const,
      registers,
      collect() {
        this.reset();
        if (consumer.currentJobId) this.set({ job_id: consumer.currentJobId }, 1);
      },
    });
    new Gauge({
      name: `${PREFIX}busy`,
      help: '1 while this worker runs a job, else 0',
      registers,
      collect() {
        this.set(consumer.currentJobId ? 1 : 0);
      },
    });
    new Gauge({
      name: `${PREFIX}engine_resident_memory_bytes`,
      help: "The engine process's resident set (absent while no engine runs)",
      registers,
      collect() {
        this.reset();
        const rss = engine.pid === null ? null : residentBytes(engine.pid);
        if (rss !== null) this.set(rss);
      },
    });
    new Gauge({
      name: `${PREFIX}engine_tensors`,
      help: "Tensors the engine's tfjs holds (tf.memory().numTensors, reported every second)",
      registers,
      collect() {
        this.reset();
        const m = engine.memory;
        if (m) this.set(m.numTensors);
      },
    });
    new Gauge({
      name: `${PREFIX}engine_tensor_bytes`,
      help: "Bytes of the tensors the engine's tfjs holds (tf.memory().numBytes)",
      registers,
      collect() {
        this.reset();
        const m = engine.memory;
        if (m) this.set(m.numBytes);
      },
    });
  }

  async onApplicationBootstrap(): Promise<void> {
    const where = this.config.metrics;
    if (!where) return;
    const server = createServer((req, res) => {
      if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
        res.writeHead(404, { 'Content-Type': 'text/plain' }).end('GET /metrics\n');
        return;
      }
      this.registry.metrics().then(
        (body) => res.writeHead(200, { 'Content-Type': this.registry.contentType }).end(body),
        (e: Error) => res.writeHead(500, { 'Content-Type': 'text/plain' }).end(`${e.message}\n`),
      );
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(where.port, where.host, () => resolve());
    });
    const { port } = server.address() as AddressInfo;
    this.log.log(`metrics on http://${where.host}:${port}/metrics`);
  }

  async onApplicationShutdown(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
