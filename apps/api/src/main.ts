/**
 * Entry point of the api role: validates the configuration, wires body limits, helmet and error
 * bodies, and listens. Produces jobs only; the worker (apps/worker) runs them.
 */
import 'reflect-metadata';
import type { AddressInfo } from 'node:net';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import express from 'express';
import helmet from 'helmet';
import { mountQueueBoard } from './admin/queue-board';
import { AppModule } from './app.module';
import { createLogger } from '@relu-lstm/jobs/logging';
import { isDatasetUpload } from './datasets/upload';
import { ConfigError, loadConfig, type ApiConfig } from './config';
import { accessControl } from './http/access';
import type { KeyRing } from './http/api-keys';
import { ErrorFilter, guardedParser } from './http/errors';
import { RateLimiter } from './http/rate-limit';
import { requestIds, requestLogContext } from './http/request-log';
import { JobQueues } from './infra/job-queues';
import { readyWithin } from './infra/redis';
import { ApiMetrics } from './metrics/api-metrics';
import { requestMetrics } from './metrics/request-metrics';
import { KEY_RING, KEYS, REDIS } from './infra/tokens';

export async function bootstrap(config: ApiConfig): Promise<NestExpressApplication> {
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(config), {
    bodyParser: false,
    logger: createLogger({ format: config.logFormat, level: config.logLevel }),
  });
  app.disable('x-powered-by');
  app.set('query parser', 'simple');
  app.use(requestIds());
  app.use(requestMetrics(app.get(ApiMetrics)));
  app.use(helmet());
  // Who is asking, and the rate limit, before any body is read.
  app.use(accessControl(app.get<KeyRing>(KEY_RING), new RateLimiter(app.get(REDIS), app.get(KEYS)), config.rateLimit));
  // Dataset uploads are read as a stream by their route (datasets/upload.ts), not parsed here.
  const jsonBody = guardedParser(express.json({ limit: config.bodyLimit }), config.bodyLimit);
  app.use((req: express.Request, res: express.Response, next: express.NextFunction) =>
    isDatasetUpload(req) ? next() : jsonBody(req, res, next),
  );
  app.use(requestLogContext());
  mountQueueBoard(app, app.get(JobQueues));
  app.useGlobalFilters(new ErrorFilter());
  await readyWithin(app.get(REDIS), 2_000);
  await app.listen(config.port, config.host);
  return app;
}

async function main(): Promise<void> {
  let config: ApiConfig;
  try {
    config = loadConfig();
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(e.message);
      process.exit(2);
    }
    throw e;
  }
  const log = new Logger('api');
  const app = await bootstrap(config);
  const { port } = app.getHttpServer().address() as AddressInfo;
  if (config.apiKeys.length === 0) {
    log.warn(
      `no API keys configured: serving the single tenant 'default' to anyone on this machine, on loopback only (set API_KEYS or API_KEYS_FILE to serve tenants and listen elsewhere)`,
    );
  } else {
    log.log(
      `API keys: ${config.apiKeys.length} for ${new Set(config.apiKeys.map((k) => k.tenant)).size} tenants; admin view ${config.adminKeyHash ? 'on' : 'off (no ADMIN_KEY_HASH)'}`,
    );
  }
  const q = config.maxLiveJobsPerTenant;
  const { tenant: rl, anonymous: anon } = config.rateLimit;
  log.log(
    `limits: ${rl.rps ? `${rl.rps} req/s (burst ${rl.burst}) per tenant` : 'no rate limit per tenant'}, ${anon.rps ? `${anon.rps} req/s (burst ${anon.burst}) per address without a key` : 'no rate limit without a key'}, ${q ? `${q} queued or running jobs per tenant` : 'no job quota'}`,
  );
  log.log(`listening on http://${config.host}:${port} (queue prefix ${config.queuePrefix})`);
  // SIGTERM / SIGINT: stop open event streams, close the server, the queues and Redis, exit 0.
  let closing = false;
  const shutdown = (signal: string) => {
    if (closing) return;
    closing = true;
    log.log(`${signal}: shutting down`);
    setTimeout(() => {
      log.error('shutdown took over 10 s; exiting');
      process.exit(1);
    }, 10_000).unref();
    app.close().then(
      () => {
        log.log('closed');
        process.exit(0);
      },
      (e: unknown) => {
        log.error(`shutdown failed: ${(e as Error)?.stack ?? String(e)}`);
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}

if (require.main === module) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
