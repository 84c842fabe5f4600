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
import { AppModule } from './app.module';
import { ConfigError, loadConfig, type ApiConfig } from './config';
import { ErrorFilter, guardedParser } from './http/errors';
import { readyWithin } from './infra/redis';
import { REDIS } from './infra/tokens';

const LEVELS = ['error', 'warn', 'log', 'debug', 'verbose'] as const;

export async function bootstrap(config: ApiConfig): Promise<NestExpressApplication> {
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(config), {
    bodyParser: false,
    logger: LEVELS.slice(0, LEVELS.indexOf(config.logLevel) + 1) as unknown as ('error' | 'warn' | 'log')[],
  });
  app.disable('x-powered-by');
  app.set('query parser', 'simple');
  app.use(helmet());
  // Dataset uploads get their own, larger limit; the parsers skip a body already parsed.
  app.use('/v1/datasets', guardedParser(express.json({ limit: config.datasetBodyLimit }), config.datasetBodyLimit));
  app.use('/v1/datasets', guardedParser(express.text({ type: 'text/csv', limit: config.datasetBodyLimit }), config.datasetBodyLimit));
  app.use(guardedParser(express.json({ limit: config.bodyLimit }), config.bodyLimit));
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
